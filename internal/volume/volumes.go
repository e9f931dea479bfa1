package volume

import (
	"context"
	"net/http"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// timeFmt is how Cinder prints times (no zone suffix).
const timeFmt = "2006-01-02T15:04:05.000000"

func fmtTime(t db.Timestamp) any {
	if t.IsZero() {
		return nil
	}
	return t.Time.UTC().Format(timeFmt)
}

const gib = int64(1) << 30

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// volumeFor loads the request's volume: another project's volume is not
// found for non-admins, then action is enforced against its project.
func (s *Service) volumeFor(ctx context.Context, q db.Querier, r *http.Request, action string) (*vol, error) {
	return loadOwned(ctx, q, r, r.PathValue("volume_id"), action, getVolume, volumeNotFound)
}

// visible reports whether the caller may know of row: its own project's
// volumes (snapshots, ...), every project's for admins.
func visible(r *http.Request, row owned) bool {
	c := caller(r)
	return row.projectID() == c.ProjectID || c.IsAdmin()
}

// viewKind selects a volume's rendering.
type viewKind int

const (
	// viewCreate is the create/update shape (no os-vol-* attributes).
	viewCreate viewKind = iota
	// viewShow is show and detail lists.
	viewShow
)

// volumeLinks are a volume's self and bookmark links.
func (s *Service) volumeLinks(r *http.Request, id string) []map[string]string {
	return []map[string]string{
		{"rel": "self", "href": s.linkBase(r) + "/volumes/" + id},
		{"rel": "bookmark", "href": s.bookmarkBase(r) + "/volumes/" + id}}
}

// volumeView renders a volume at the request's microversion.
func (s *Service) volumeView(r *http.Request, v *vol, kind viewKind) map[string]any {
	mv := versionOf(r)
	bootable := "false"
	if v.Bootable {
		bootable = "true"
	}
	md := map[string]string{}
	for k, val := range v.Metadata {
		md[k] = val
	}
	m := map[string]any{
		"id": v.ID, "name": v.Name, "description": v.Description, "size": v.Size, "status": v.Status,
		"user_id": v.UserID, "availability_zone": v.AZ, "bootable": bootable, "encrypted": false,
		"multiattach": v.Multiattach, "metadata": md, "attachments": volumeAttachmentsView(r, v),
		"created_at": fmtTime(v.CreatedAt), "updated_at": fmtTime(v.UpdatedAt),
		"replication_status": nil, "consistencygroup_id": nil,
		"snapshot_id": v.SnapshotID, "source_volid": v.SourceVolID, "volume_type": v.TypeName,
		"links": s.volumeLinks(r, v.ID),
	}
	if caller(r).IsAdmin() {
		m["migration_status"] = v.MigrationStatus // as Cinder, for admins only
	}
	if mv >= 13 {
		m["group_id"] = nil
	}
	if mv >= 21 {
		m["provider_id"] = nil
	}
	if mv >= 48 {
		m["service_uuid"] = nil
		m["shared_targets"] = false
		if mv >= 69 {
			m["shared_targets"] = nil
		}
	}
	if mv >= 61 && allowed(r, "volume_extension:volume_host_attribute", v.ProjectID) {
		m["cluster_name"] = nil
	}
	if mv >= 63 {
		m["volume_type_id"] = v.TypeID
	}
	if mv >= 64 {
		m["encryption_key_id"] = nil
	}
	if mv >= 65 {
		m["consumes_quota"] = true
	}
	if kind == viewShow {
		s.addShowAttributes(r, v, m)
	}
	return m
}

// addShowAttributes adds what show (not create) renders: image metadata
// and the os-vol-* attributes policy lets the caller see.
func (s *Service) addShowAttributes(r *http.Request, v *vol, m map[string]any) {
	if len(v.ImageMetadata) > 0 {
		m["volume_image_metadata"] = v.ImageMetadata
	}
	if allowed(r, "volume_extension:volume_tenant_attribute", v.ProjectID) {
		m["os-vol-tenant-attr:tenant_id"] = v.ProjectID
	}
	if allowed(r, "volume_extension:volume_host_attribute", v.ProjectID) {
		var host any
		if v.Host != nil {
			host = s.hostString(*v.Host)
		}
		m["os-vol-host-attr:host"] = host
	}
	if allowed(r, "volume_extension:volume_mig_status_attribute", v.ProjectID) {
		m["os-vol-mig-status-attr:migstat"] = v.MigrationStatus
		m["os-vol-mig-status-attr:name_id"] = nil
	}
}

// hostString renders a backend as Cinder's host@backend#pool, the shape
// clients (and tempest's schema) expect in os-vol-host-attr:host.
func (s *Service) hostString(backendName string) string {
	pool := backendName
	if b := s.backendNamed(backendName); b != nil && b.cfg.VolumeBackendName != "" {
		pool = b.cfg.VolumeBackendName
	}
	return s.hostname + "@" + backendName + "#" + pool
}

func (s *Service) showVolume(w http.ResponseWriter, r *http.Request) error {
	v, err := s.volumeFor(r.Context(), s.deps.DB, r, "volume:get")
	if err != nil {
		return err
	}
	if err := s.setProgressHeader(w, r, v.ID); err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"volume": s.volumeView(r, v, viewShow)})
}

// updateRequest is a validated volume update body; nil fields are not
// changed.
type updateRequest struct {
	Name, Description *string
	SetName, SetDesc  bool
	Metadata          map[string]string
	SetMetadata       bool
}

func parseUpdate(r *http.Request) (*updateRequest, error) {
	in, err := decodeEntity(r, "volume")
	if err != nil {
		return nil, err
	}
	if err := checkAllowed("volume", in, "name", "description", "display_name", "display_description", "metadata"); err != nil {
		return nil, err
	}
	u := &updateRequest{}
	if u.Name, u.SetName, err = lastPresent(in, 255, "name", "display_name"); err != nil {
		return nil, err
	}
	if u.Description, u.SetDesc, err = lastPresent(in, 255, "description", "display_description"); err != nil {
		return nil, err
	}
	if md, ok := in["metadata"]; ok {
		if u.Metadata, err = parseMetadata("metadata", md); err != nil {
			return nil, err
		}
		u.SetMetadata = true
	}
	return u, nil
}

// lastPresent reads the last of fields present in m (an update's legacy
// display_* names override the plain ones) as an optional string of at
// most max characters; set reports whether any was present.
func lastPresent(m map[string]any, max int, fields ...string) (val *string, set bool, err error) {
	for _, f := range fields {
		if _, ok := m[f]; !ok {
			continue
		}
		if val, err = optString(m, f, max); err != nil {
			return nil, false, err
		}
		set = true
	}
	return val, set, nil
}

func (s *Service) updateVolume(w http.ResponseWriter, r *http.Request) error {
	u, err := parseUpdate(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var v *vol
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		var err error
		if v, err = s.volumeFor(ctx, tx, r, "volume:update"); err != nil {
			return err
		}
		if u.SetName {
			v.Name = u.Name
		}
		if u.SetDesc {
			v.Description = u.Description
		}
		if u.SetMetadata {
			if err := replaceKV(ctx, tx, setMetadata, v.ID, u.Metadata); err != nil {
				return err
			}
			v.Metadata = u.Metadata
		}
		v.UpdatedAt = db.Now()
		return updateVolumeText(ctx, tx, v)
	})
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"volume": s.volumeView(r, v, viewCreate)})
}

// deletableStatuses are the statuses a volume may be deleted from.
var deletableStatuses = []string{"available", "error", "error_restoring", "error_extending", "error_managing"}

func (s *Service) deleteVolume(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	cascade, err := boolQuery(r, "cascade")
	if err != nil {
		return err
	}
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume:delete")
	if err != nil {
		return err
	}
	if err := s.checkNotFrozen(ctx, s.deps.DB, v); err != nil {
		return err
	}
	if v.AttachStatus != "detached" {
		return errNotDeletable(false)
	}
	tk, queued, err := s.beginVolumeDelete(ctx, r, v, cascade, false)
	if err != nil {
		return err
	}
	if queued { // a cascade: a task deletes the snapshots, then the volume
		return replyEmpty(w, http.StatusAccepted)
	}
	if err := s.finishVolumeDelete(ctx, v, tk); err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

// backendOf returns the backend holding v, or nil when it has none (not
// scheduled yet) or it is no longer configured.
func (s *Service) backendOf(v *vol) *backend {
	if v.Host == nil {
		return nil
	}
	return s.backendNamed(*v.Host)
}
