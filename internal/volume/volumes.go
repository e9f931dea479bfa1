package volume

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
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

// volumeView renders a volume at the request's microversion. kind "create"
// is the create/update shape (no os-vol-* attributes); "show" is show and
// detail lists.
func (s *Service) volumeView(r *http.Request, v *vol, kind string) map[string]any {
	mv := versionOf(r)
	base := s.linkBase(r)
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
		"multiattach": v.Multiattach, "metadata": md, "attachments": []any{},
		"created_at": fmtTime(v.CreatedAt), "updated_at": fmtTime(v.UpdatedAt),
		"replication_status": nil, "consistencygroup_id": nil, "migration_status": nil,
		"snapshot_id": v.SnapshotID, "source_volid": v.SourceVolID, "volume_type": v.TypeName,
		"links": []map[string]string{
			{"rel": "self", "href": base + "/volumes/" + v.ID},
			{"rel": "bookmark", "href": strings.Replace(base, "/v3/", "/", 1) + "/volumes/" + v.ID}},
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
	if kind == "show" {
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
			m["os-vol-mig-status-attr:migstat"] = nil
			m["os-vol-mig-status-attr:name_id"] = nil
		}
	}
	return m
}

func (s *Service) showVolume(w http.ResponseWriter, r *http.Request) {
	v, err := s.volumeFor(r.Context(), s.deps.DB, r, "volume:get")
	if err != nil {
		fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"volume": s.volumeView(r, v, "show")})
}

// parseSize reads a volume size in GiB (integer or digit string, >= 1).
func parseSize(v any) (int64, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		return 0, invalidInput("size", v, "%s is not of type 'integer', 'string', 'null'", pyRepr(v, true))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strings.HasPrefix(s, "+") {
		return 0, invalidInput("size", v, "%s does not match '^[0-9]+$'", pyRepr(v, true))
	}
	if n < 1 {
		return 0, invalidInput("size", v, "%s is less than the minimum of 1", pyRepr(v, true))
	}
	if n > math.MaxInt32 {
		return 0, invalidInput("size", v, "%s is greater than the maximum of 2147483647", pyRepr(v, true))
	}
	return n, nil
}

// parseMetadata validates a metadata object: string keys 1..255, string
// values up to 255.
func parseMetadata(field string, v any) (map[string]string, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalidInput(field, v, "%s is not of type 'object'", pyRepr(v, true))
	}
	out := map[string]string{}
	for k, val := range m {
		if len(k) == 0 || len([]rune(k)) > 255 {
			return nil, invalidInput(field, m, "'%s' does not match any of the regexes: '^[a-zA-Z0-9-_:. /]{1,255}$'", k)
		}
		sv, ok := val.(string)
		if !ok {
			return nil, invalidInput(k, val, "%s is not of type 'string'", pyRepr(val, true))
		}
		if len([]rune(sv)) > 255 {
			return nil, invalidInput(k, sv, "'%s' is too long", sv)
		}
		out[k] = sv
	}
	return out, nil
}

func (s *Service) createVolume(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := enforce(r, "volume:create", ""); err != nil {
		fail(w, r, err)
		return
	}
	in, err := decodeEntity(r, "volume")
	if err != nil {
		fail(w, r, err)
		return
	}
	c := caller(r)
	v := &vol{ID: uuid.NewString(), ProjectID: c.ProjectID, UserID: c.UserID, Status: "creating",
		AttachStatus: "detached", CreatedAt: db.Now(), Metadata: map[string]string{}, ImageMetadata: map[string]string{}}
	for _, k := range []string{"name", "display_name"} {
		if v.Name == nil {
			if v.Name, err = optString(in, k, 255); err != nil {
				fail(w, r, err)
				return
			}
		}
	}
	for _, k := range []string{"description", "display_description"} {
		if v.Description == nil {
			if v.Description, err = optString(in, k, 255); err != nil {
				fail(w, r, err)
				return
			}
		}
	}
	if sz, ok := in["size"]; ok && sz != nil {
		if v.Size, err = parseSize(sz); err != nil {
			fail(w, r, err)
			return
		}
	}
	if md, ok := in["metadata"]; ok && md != nil {
		if v.Metadata, err = parseMetadata("metadata", md); err != nil {
			fail(w, r, err)
			return
		}
	}
	if ma, ok := in["multiattach"]; ok && ma != nil {
		if v.Multiattach, err = parseBool("multiattach", ma); err != nil {
			fail(w, r, err)
			return
		}
	}
	if sid, err := optString(in, "snapshot_id", 0); err != nil || sid != nil {
		if err == nil {
			err = errs.E(errs.NotFound, "Snapshot %s could not be found.", *sid)
		}
		fail(w, r, err)
		return
	}
	if bid, err := optString(in, "backup_id", 0); err != nil || bid != nil {
		if err == nil {
			err = errs.E(errs.NotFound, "Backup %s could not be found.", *bid)
		}
		fail(w, r, err)
		return
	}
	payload := workPayload{}
	kind := workCreate
	// Source volume (clone).
	if src, err := optString(in, "source_volid", 0); err != nil {
		fail(w, r, err)
		return
	} else if src != nil {
		sv, err := getVolume(ctx, s.deps.DB, *src)
		if err != nil || (sv.ProjectID != c.ProjectID && !c.IsAdmin()) {
			fail(w, r, errs.E(errs.NotFound, "Volume %s could not be found.", *src))
			return
		}
		if sv.Status != "available" && sv.Status != "in-use" {
			fail(w, r, errs.E(errs.Invalid, "Invalid volume: Source volume status must be available or in-use, but current status is: %s.", sv.Status))
			return
		}
		if v.Size == 0 {
			v.Size = sv.Size
		}
		if v.Size < sv.Size {
			fail(w, r, errs.E(errs.Invalid, "Volume size '%d'GB cannot be smaller than the source volume size '%d'GB.", v.Size, sv.Size))
			return
		}
		v.SourceVolID, v.Bootable = src, sv.Bootable
		for k, val := range sv.ImageMetadata {
			v.ImageMetadata[k] = val
		}
		kind = workClone
		payload.SourceHost = deref(sv.Host)
		if v.TypeID == nil {
			v.TypeID = sv.TypeID
		}
	}
	// Image.
	imageRef, err := optString(in, "imageRef", 0)
	if err != nil {
		fail(w, r, err)
		return
	}
	if imageRef == nil {
		if imageRef, err = optString(in, "image_id", 0); err != nil {
			fail(w, r, err)
			return
		}
	}
	if imageRef != nil && kind == workCreate {
		if err := s.prepareFromImage(r, v, *imageRef); err != nil {
			fail(w, r, err)
			return
		}
		kind = workFromImage
		payload.ImageID = *imageRef
		payload.ImageEndpoint = c.EndpointURL("image", "public")
		payload.Token = c.Token
	}
	if v.Size == 0 {
		fail(w, r, errs.E(errs.Invalid, "Invalid input received: \"size\" is a required parameter when no source (snapshot, volume, image, backup) is given."))
		return
	}
	// Type.
	typeName, err := optString(in, "volume_type", 255)
	if err != nil {
		fail(w, r, err)
		return
	}
	var t *volType
	switch {
	case typeName != nil:
		if t, err = s.getType(ctx, s.deps.DB, r, *typeName, true); err != nil {
			fail(w, r, errs.E(errs.NotFound, "Volume type with name %s could not be found.", *typeName))
			return
		}
	case v.TypeID != nil:
		t, err = s.getType(ctx, s.deps.DB, nil, *v.TypeID, false)
	default:
		t, err = s.getType(ctx, s.deps.DB, nil, "default", false)
	}
	if err != nil {
		fail(w, r, err)
		return
	}
	v.TypeID, v.TypeName = &t.ID, &t.Name
	// Availability zone.
	az, err := optString(in, "availability_zone", 255)
	if err != nil {
		fail(w, r, err)
		return
	}
	v.AZ = s.deps.Config.Volume.DefaultAvailabilityZone
	if az != nil {
		if !s.knownAZ(*az) {
			fail(w, r, errs.E(errs.Invalid, "Invalid input received: Availability zone '%s' is invalid.", *az))
			return
		}
		v.AZ = *az
	}
	payload.Size = v.Size
	payload.AZ = v.AZ
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if err := insertVolume(ctx, tx, v); err != nil {
			return err
		}
		return s.addWork(ctx, tx, v.ID, kind, payload, api.RequestID(ctx))
	})
	if err != nil {
		fail(w, r, err)
		return
	}
	s.wake()
	api.WriteJSON(w, http.StatusAccepted, map[string]any{"volume": s.volumeView(r, v, "create")})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func insertVolume(ctx context.Context, tx *db.Tx, v *vol) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO volumes (id, project_id, user_id, name, description, size, status,
		attach_status, type_id, availability_zone, bootable, multiattach, image_id, source_volid, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		v.ID, v.ProjectID, v.UserID, v.Name, v.Description, v.Size, v.Status, v.AttachStatus, v.TypeID, v.AZ,
		v.Bootable, v.Multiattach, v.ImageID, v.SourceVolID, v.CreatedAt); err != nil {
		return err
	}
	if err := putKV(ctx, tx, "volume_metadata", v.ID, v.Metadata); err != nil {
		return err
	}
	return putKV(ctx, tx, "volume_image_metadata", v.ID, v.ImageMetadata)
}

// putKV upserts key/values into a volume's metadata table.
func putKV(ctx context.Context, tx *db.Tx, table, id string, m map[string]string) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (volume_id, key, value) VALUES (?, ?, ?)
			ON CONFLICT (volume_id, key) DO UPDATE SET value = excluded.value`, id, k, m[k]); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) knownAZ(az string) bool {
	if az == s.deps.Config.Volume.DefaultAvailabilityZone {
		return true
	}
	for _, b := range s.backends {
		if b.az == az {
			return true
		}
	}
	return false
}

// coreImageProps are glance_core_properties plus what Cinder records
// itself; they are not copied to images uploaded from the volume.
var coreImageProps = map[string]bool{"checksum": true, "container_format": true, "disk_format": true,
	"image_name": true, "image_id": true, "min_disk": true, "min_ram": true, "name": true, "size": true}

// prepareFromImage checks the image (active, fits) and records its
// metadata on the volume, as Cinder's create flow does.
func (s *Service) prepareFromImage(r *http.Request, v *vol, imageID string) error {
	gc, err := s.glanceFor(r)
	if err != nil {
		return err
	}
	img, err := gc.GetImage(r.Context(), caller(r).Token, imageID)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return errs.E(errs.NotFound, "Image %s could not be found.", imageID)
		}
		if errs.KindOf(err) == errs.Other {
			return errs.Wrap(errs.Unavailable, err, "The image service is unavailable.")
		}
		return err
	}
	if img.Status != "active" {
		return errs.E(errs.Invalid, "Invalid image identifier or unable to access requested image.")
	}
	imgGiB := (img.Size + gib - 1) / gib
	if img.VirtualSize > 0 {
		if vg := (img.VirtualSize + gib - 1) / gib; vg > imgGiB {
			imgGiB = vg
		}
	}
	if v.Size == 0 {
		v.Size = max(imgGiB, img.MinDisk, 1)
	}
	if v.Size < imgGiB {
		return errs.E(errs.Invalid, "Invalid input received: Size of specified image %d is larger than volume size %d.", imgGiB, v.Size)
	}
	if v.Size < img.MinDisk {
		return errs.E(errs.Invalid, "Invalid input received: Volume size %dGB cannot be smaller than the image minDisk size %dGB.", v.Size, img.MinDisk)
	}
	v.ImageID = &img.ID
	md := v.ImageMetadata
	md["image_id"], md["image_name"] = img.ID, img.Name
	md["checksum"], md["container_format"], md["disk_format"] = img.Checksum, img.ContainerFormat, img.DiskFormat
	md["min_disk"], md["size"] = strconv.FormatInt(img.MinDisk, 10), strconv.FormatInt(img.Size, 10)
	md["min_ram"] = "0"
	for k, pv := range img.Properties {
		if reservedNamespace(k) || k == "min_ram" {
			if k == "min_ram" {
				md[k] = scalarString(pv)
			}
			continue
		}
		if str := scalarString(pv); str != "" || pv != nil {
			md[k] = str
		}
	}
	return nil
}

// imageTopLevel are Glance image fields that are not properties.
var imageTopLevel = map[string]bool{"id": true, "name": true, "status": true, "size": true, "virtual_size": true,
	"disk_format": true, "container_format": true, "checksum": true, "stores": true, "min_disk": true,
	"visibility": true, "protected": true, "owner": true, "created_at": true, "updated_at": true, "tags": true,
	"self": true, "file": true, "schema": true, "locations": true, "direct_url": true, "os_hash_algo": true,
	"os_hash_value": true, "os_hidden": true, "os_glance_failed_import": true, "os_glance_importing_to_stores": true}

// reservedNamespace reports keys never copied between images and volumes.
func reservedNamespace(k string) bool {
	return imageTopLevel[k] || strings.HasPrefix(k, "os_glance") || strings.HasPrefix(k, "img_signature")
}

func scalarString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func (s *Service) updateVolume(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	in, err := decodeEntity(r, "volume")
	if err != nil {
		fail(w, r, err)
		return
	}
	if err := checkAllowed("volume", in, "name", "description", "display_name", "display_description", "metadata"); err != nil {
		fail(w, r, err)
		return
	}
	var v *vol
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if v, err = s.volumeFor(ctx, tx, r, "volume:update"); err != nil {
			return err
		}
		for _, k := range []string{"name", "display_name"} {
			if _, ok := in[k]; ok {
				if v.Name, err = optString(in, k, 255); err != nil {
					return err
				}
			}
		}
		for _, k := range []string{"description", "display_description"} {
			if _, ok := in[k]; ok {
				if v.Description, err = optString(in, k, 255); err != nil {
					return err
				}
			}
		}
		if md, ok := in["metadata"]; ok {
			m, err := parseMetadata("metadata", md)
			if err != nil {
				return err
			}
			if err := replaceKV(ctx, tx, v.ID, m); err != nil {
				return err
			}
			v.Metadata = m
		}
		v.UpdatedAt = db.Now()
		_, err = tx.ExecContext(ctx, `UPDATE volumes SET name = ?, description = ?, updated_at = ? WHERE id = ?`, v.Name, v.Description, v.UpdatedAt, v.ID)
		return err
	})
	if err != nil {
		fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"volume": s.volumeView(r, v, "create")})
}

func replaceKV(ctx context.Context, tx *db.Tx, id string, m map[string]string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM volume_metadata WHERE volume_id = ?`, id); err != nil {
		return err
	}
	return putKV(ctx, tx, "volume_metadata", id, m)
}

// deletableStatuses are the statuses a volume may be deleted from.
var deletableStatuses = []string{"available", "error", "error_restoring", "error_extending", "error_managing"}

func (s *Service) deleteVolume(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume:delete")
	if err != nil {
		fail(w, r, err)
		return
	}
	if v.AttachStatus != "detached" || setStatus(ctx, s.deps.DB, v.ID, "deleting", deletableStatuses...) != nil {
		fail(w, r, errs.E(errs.Invalid, "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer."))
		return
	}
	if err := s.destroyVolume(ctx, v); err != nil {
		_ = forceStatus(context.WithoutCancel(ctx), s.deps.DB, v.ID, "error_deleting")
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// destroyVolume removes the volume's data and row.
func (s *Service) destroyVolume(ctx context.Context, v *vol) error {
	if v.Host != nil {
		if b := s.backendNamed(*v.Host); b != nil {
			if err := b.drv.Delete(ctx, v.ID); err != nil && errs.KindOf(err) != errs.NotFound {
				return err
			}
		}
	}
	_, err := s.deps.DB.ExecContext(ctx, `DELETE FROM volumes WHERE id = ?`, v.ID)
	return err
}

// listParams are the parsed query of a volume list.
type listParams struct {
	filters  []string
	args     []any
	sortKey  string
	sortDesc bool
	limit    int
	marker   string
}

var sortColumns = map[string]string{"id": "v.id", "name": "COALESCE(v.name, '')", "display_name": "COALESCE(v.name, '')",
	"status": "v.status", "size": "v.size", "availability_zone": "v.availability_zone", "created_at": "v.created_at",
	"updated_at": "COALESCE(v.updated_at, '')", "bootable": "v.bootable"}

const maxLimit = 1000

func (s *Service) parseList(r *http.Request) (*listParams, error) {
	q := r.URL.Query()
	c := caller(r)
	p := &listParams{sortKey: "created_at", sortDesc: true, limit: maxLimit}
	allTenants := false
	if at := q.Get("all_tenants"); at != "" && c.IsAdmin() {
		allTenants, _ = parseBool("all_tenants", at)
		if at == "" {
			allTenants = true
		}
	}
	if pid := q.Get("project_id"); pid != "" && c.IsAdmin() && allTenants {
		p.filters, p.args = append(p.filters, "v.project_id = ?"), append(p.args, pid)
	} else if !allTenants {
		p.filters, p.args = append(p.filters, "v.project_id = ?"), append(p.args, c.ProjectID)
	}
	for key, vals := range q {
		val := vals[0]
		switch key {
		case "name", "display_name":
			p.filters, p.args = append(p.filters, "v.name = ?"), append(p.args, val)
		case "status":
			p.filters, p.args = append(p.filters, "v.status = ?"), append(p.args, val)
		case "availability_zone":
			p.filters, p.args = append(p.filters, "v.availability_zone = ?"), append(p.args, val)
		case "bootable":
			b, err := parseBool("bootable", val)
			if err != nil {
				return nil, err
			}
			p.filters, p.args = append(p.filters, "v.bootable = ?"), append(p.args, b)
		case "metadata":
			md, err := parseDictParam(val)
			if err != nil {
				return nil, errs.E(errs.Invalid, "Invalid input received: metadata filter %q is not a dict.", val)
			}
			for k, mv := range md {
				p.filters = append(p.filters, "EXISTS (SELECT 1 FROM volume_metadata m WHERE m.volume_id = v.id AND m.key = ? AND m.value = ?)")
				p.args = append(p.args, k, mv)
			}
		case "limit":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return nil, errs.E(errs.Invalid, "Invalid input received: limit must be a non-negative integer.")
			}
			p.limit = min(n, maxLimit)
		case "marker":
			p.marker = val
		case "sort_key":
			p.sortKey = val
		case "sort_dir":
			if val != "asc" && val != "desc" {
				return nil, errs.E(errs.Invalid, "Invalid input received: Invalid sort direction: %s.", val)
			}
			p.sortDesc = val == "desc"
		case "sort":
			first := strings.Split(val, ",")[0]
			k, d, _ := strings.Cut(first, ":")
			p.sortKey = strings.TrimSpace(k)
			if d != "" {
				if d != "asc" && d != "desc" {
					return nil, errs.E(errs.Invalid, "Invalid input received: Invalid sort direction: %s.", d)
				}
				p.sortDesc = d == "desc"
			}
		}
	}
	if _, ok := sortColumns[p.sortKey]; !ok {
		return nil, errs.E(errs.Invalid, "Invalid input received: Invalid sort key %s.", p.sortKey)
	}
	return p, nil
}

// parseDictParam reads a dict query value, JSON or Python literal style
// ({'k': 'v'}), as clients send it.
func parseDictParam(s string) (map[string]string, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		if err := json.Unmarshal([]byte(strings.ReplaceAll(s, "'", `"`)), &m); err != nil {
			return nil, err
		}
	}
	out := map[string]string{}
	for k, v := range m {
		out[k] = scalarString(v)
	}
	return out, nil
}

// queryVolumes runs a keyset-paged list: O(limit) rows read.
func (s *Service) queryVolumes(ctx context.Context, q db.Querier, r *http.Request, p *listParams) ([]*vol, bool, error) {
	col := sortColumns[p.sortKey]
	filters, args := append([]string(nil), p.filters...), append([]any(nil), p.args...)
	cmp, dir := ">", "ASC"
	if p.sortDesc {
		cmp, dir = "<", "DESC"
	}
	if p.marker != "" {
		mv, err := scanVol(q.QueryRowContext(ctx, `SELECT `+volCols+volFrom+` WHERE v.id = ?`, p.marker))
		if db.IsNoRows(err) || err == nil && mv.ProjectID != caller(r).ProjectID && !caller(r).IsAdmin() {
			return nil, false, errs.E(errs.NotFound, "Marker %s could not be found.", p.marker)
		}
		if err != nil {
			return nil, false, err
		}
		var key any
		if err := q.QueryRowContext(ctx, `SELECT `+col+` FROM volumes v WHERE v.id = ?`, p.marker).Scan(&key); err != nil {
			return nil, false, err
		}
		// A row-value comparison lets both engines seek the (project,
		// sort key, id) index instead of scanning up to the marker.
		filters = append(filters, "("+col+", v.id) "+cmp+" (?, ?)")
		args = append(args, key, p.marker)
	}
	query := `SELECT ` + volCols + volFrom
	if len(filters) > 0 {
		query += ` WHERE ` + strings.Join(filters, " AND ")
	}
	query += ` ORDER BY ` + col + ` ` + dir + `, v.id ` + dir + ` LIMIT ?`
	args = append(args, p.limit+1)
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, false, err
	}
	var out []*vol
	for rows.Next() {
		v, err := scanVol(rows)
		if err != nil {
			rows.Close()
			return nil, false, err
		}
		out = append(out, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	more := len(out) > p.limit
	if more {
		out = out[:p.limit]
	}
	return out, more, nil
}

func (s *Service) listVolumes(w http.ResponseWriter, r *http.Request)       { s.list(w, r, false) }
func (s *Service) listVolumesDetail(w http.ResponseWriter, r *http.Request) { s.list(w, r, true) }

func (s *Service) list(w http.ResponseWriter, r *http.Request, detail bool) {
	ctx := r.Context()
	if err := enforce(r, "volume:get_all", ""); err != nil {
		fail(w, r, err)
		return
	}
	p, err := s.parseList(r)
	if err != nil {
		fail(w, r, err)
		return
	}
	var vols []*vol
	var more bool
	// the page and the metadata shown with it, from one snapshot
	err = s.deps.DB.InReadTx(ctx, func(tx *db.Tx) error {
		var err error
		if vols, more, err = s.queryVolumes(ctx, tx, r, p); err != nil || !detail {
			return err
		}
		return loadKVs(ctx, tx, vols)
	})
	if err != nil {
		fail(w, r, err)
		return
	}
	out := []any{}
	for _, v := range vols {
		if detail {
			out = append(out, s.volumeView(r, v, "show"))
		} else {
			full := s.volumeView(r, v, "create")
			out = append(out, map[string]any{"id": v.ID, "name": v.Name, "links": full["links"]})
		}
	}
	resp := map[string]any{"volumes": out}
	// Like Cinder, a full page always links to the next one (which may be
	// empty): clients page until a short page.
	if len(vols) > 0 && (more || r.URL.Query().Has("limit") && len(vols) == p.limit) {
		q := r.URL.Query()
		q.Set("marker", vols[len(vols)-1].ID)
		q.Set("limit", strconv.Itoa(p.limit))
		path := "/volumes"
		if detail {
			path += "/detail"
		}
		resp["volumes_links"] = []map[string]string{{"rel": "next", "href": s.linkBase(r) + path + "?" + q.Encode()}}
	}
	api.WriteJSON(w, http.StatusOK, resp)
}

func (s *Service) volumeSummary(w http.ResponseWriter, r *http.Request) {
	mv := versionOf(r)
	if mv < 12 {
		fail(w, r, errs.E(errs.NotFound, "The resource could not be found."))
		return
	}
	if err := enforce(r, "volume:get_all", ""); err != nil {
		fail(w, r, err)
		return
	}
	p, err := s.parseList(r)
	if err != nil {
		fail(w, r, err)
		return
	}
	ctx := r.Context()
	where := ""
	if len(p.filters) > 0 {
		where = " WHERE " + strings.Join(p.filters, " AND ")
	}
	var count, size int64
	if err := s.deps.DB.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(v.size), 0) FROM volumes v`+where, p.args...).Scan(&count, &size); err != nil {
		fail(w, r, err)
		return
	}
	sum := map[string]any{"total_count": count, "total_size": size}
	if mv >= 36 {
		md := map[string]any{}
		rows, err := s.deps.DB.QueryContext(ctx, `SELECT DISTINCT m.key, m.value FROM volume_metadata m JOIN volumes v ON v.id = m.volume_id`+where, p.args...)
		if err != nil {
			fail(w, r, err)
			return
		}
		for rows.Next() {
			var k, val string
			if err := rows.Scan(&k, &val); err == nil {
				if prev, ok := md[k].([]string); ok {
					md[k] = append(prev, val)
				} else {
					md[k] = []string{val}
				}
			}
		}
		rows.Close()
		for k, vs := range md {
			if l := vs.([]string); len(l) == 1 {
				md[k] = l[0]
			}
		}
		sum["metadata"] = md
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"volume-summary": sum})
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
