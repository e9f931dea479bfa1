package volume

// The snapshots API (/snapshots): create, list, show, update, delete and
// metadata. A snapshot is created and deleted by durable tasks
// (snapshot_work.go); its actions are in snapshot_actions.go.

import (
	"context"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/progress"
)

// Microversions that change snapshots.
const (
	mvGroupSnapshots       = 14 // group_snapshot_id
	mvSnapshotMetadataList = 22 // the metadata list filter
	mvSnapshotSortName     = 30 // sort by name (display_name)
	mvRevert               = 40 // the revert volume action
	mvSnapshotUserID       = 41 // user_id
	mvUseQuota             = 65 // consumes_quota
	mvSnapshotInUse        = 66 // in-use volumes without force
)

// snapshotRoutes registers the snapshot API under p ("/v3/{project_id}").
func (s *Service) snapshotRoutes(m *api.Mux, p string) {
	m.Handle("GET "+p+"/snapshots", lister(s.snapshotList, false))
	m.Handle("GET "+p+"/snapshots/detail", lister(s.snapshotList, true))
	m.Handle("POST "+p+"/snapshots", handler(s.createSnapshot))
	m.Handle("GET "+p+"/snapshots/{snapshot_id}", handler(s.showSnapshot))
	m.Handle("PUT "+p+"/snapshots/{snapshot_id}", handler(s.updateSnapshot))
	m.Handle("DELETE "+p+"/snapshots/{snapshot_id}", handler(s.deleteSnapshot))
	m.Handle("POST "+p+"/snapshots/{snapshot_id}/action", handler(s.snapshotAction))
	snapshotMetadata(s).routes(m, p+"/snapshots/{snapshot_id}")
}

// snapshotFor loads the request's snapshot: another project's snapshot is
// not found for non-admins, then action is enforced against its project.
func (s *Service) snapshotFor(ctx context.Context, q db.Querier, r *http.Request, action string) (*snapshot, error) {
	return loadOwned(ctx, q, r, r.PathValue("snapshot_id"), action, getSnapshot, snapshotNotFound)
}

// snapshotShape selects a snapshot's rendering.
type snapshotShape int

const (
	// snapshotSummary is the list without detail: the fields of 3.0.
	snapshotSummary snapshotShape = iota
	// snapshotDetail is create and update: plus the microversion fields.
	snapshotDetail
	// snapshotShow is show and the detail list: plus the extended
	// attributes (project, progress) policy lets the caller see.
	snapshotShow
)

// snapshotView renders a snapshot at the request's microversion.
func (s *Service) snapshotView(r *http.Request, sn *snapshot, shape snapshotShape) map[string]any {
	md := map[string]string{}
	for k, v := range sn.Metadata {
		md[k] = v
	}
	m := map[string]any{
		"id": sn.ID, "created_at": fmtTime(sn.CreatedAt), "updated_at": fmtTime(sn.UpdatedAt),
		"name": sn.Name, "description": sn.Description, "volume_id": sn.VolumeID, "status": sn.Status,
		"size": sn.VolumeSize, "metadata": md,
	}
	if shape == snapshotSummary {
		return m
	}
	mv := versionOf(r)
	if mv >= mvGroupSnapshots {
		m["group_snapshot_id"] = nil
	}
	if mv >= mvSnapshotUserID {
		m["user_id"] = sn.UserID
	}
	if mv >= mvUseQuota {
		m["consumes_quota"] = true
	}
	if shape == snapshotShow && allowed(r, "volume_extension:extended_snapshot_attributes", sn.ProjectID) {
		m["os-extended-snapshot-attributes:project_id"] = sn.ProjectID
		m["os-extended-snapshot-attributes:progress"] = sn.Progress
	}
	return m
}

// snapshotCreateRequest is a validated snapshot create body.
type snapshotCreateRequest struct {
	// VolumeID is nil for a null volume_id (then no volume is found).
	VolumeID          *string
	Name, Description *string
	Force             *bool
	Metadata          map[string]string
}

func parseSnapshotCreate(r *http.Request) (*snapshotCreateRequest, error) {
	in, err := decodeEntity(r, "snapshot")
	if err != nil {
		return nil, err
	}
	if err := checkAllowed("snapshot", in, "name", "display_name", "description", "volume_id", "force", "metadata"); err != nil {
		return nil, err
	}
	c := &snapshotCreateRequest{Metadata: map[string]string{}}
	raw, ok := in["volume_id"]
	if !ok {
		return nil, invalidInput("snapshot", in, "'volume_id' is a required property")
	}
	if raw != nil {
		id, ok := raw.(string)
		if !ok || !isUUID(id) {
			return nil, invalidInput("volume_id", raw, "%s is not valid under any of the given schemas", pyRepr(raw, true))
		}
		c.VolumeID = &id
	}
	// name overrides display_name when both are given, as in Cinder.
	if c.Name, _, err = lastPresent(in, 255, "display_name", "name"); err != nil {
		return nil, err
	}
	if c.Description, err = optString(in, "description", 255); err != nil {
		return nil, err
	}
	if f, ok := in["force"]; ok {
		b, err := parseBool("force", f)
		if err != nil {
			return nil, err
		}
		c.Force = &b
	}
	if md := in["metadata"]; md != nil {
		if c.Metadata, err = parseMetadata("metadata", md); err != nil {
			return nil, err
		}
	}
	c.Name, c.Description = trimmed(c.Name), trimmed(c.Description)
	return c, nil
}

// trimmed strips a name or description as Cinder's
// validate_name_and_description does.
func trimmed(s *string) *string {
	if s == nil {
		return nil
	}
	t := strings.TrimSpace(*s)
	return &t
}

// snapshotInUseFlag refuses force=false from 3.66, where in-use volumes
// are snapshotted without it.
const snapshotInUseFlag = "Since microversion 3.66 the 'force' flag is invalid for this request.  For backward compatability, however, when the 'force' flag is passed with a value evaluating to True, it is silently ignored."

func (s *Service) createSnapshot(w http.ResponseWriter, r *http.Request) error {
	req, err := parseSnapshotCreate(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if req.VolumeID == nil {
		return volumeNotFound("None")
	}
	v, err := loadOwned(ctx, s.deps.DB, r, *req.VolumeID, "volume:get", getVolume, volumeNotFound)
	if err != nil {
		return err
	}
	mv := versionOf(r)
	if req.Force != nil && !*req.Force && mv >= mvSnapshotInUse {
		return errs.E(errs.Invalid, "%s", snapshotInUseFlag)
	}
	valid := []string{"available"}
	if req.Force != nil && *req.Force || mv >= mvSnapshotInUse {
		valid = append(valid, "in-use")
	}
	if err := checkSnapshottable(r, v, valid); err != nil {
		return err
	}
	c := caller(r)
	sn := &snapshot{ID: uuid.NewString(), VolumeID: v.ID, ProjectID: c.ProjectID, UserID: c.UserID,
		Name: req.Name, Description: req.Description, Status: "creating", Progress: "0%", VolumeSize: v.Size,
		TypeID: v.TypeID, CreatedAt: db.Now(), Metadata: req.Metadata}
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		// The volume may have left valid since it was read: lock it in one.
		ok, err := lockVolumeIn(ctx, tx, v.ID, valid...)
		if err != nil {
			return err
		}
		if !ok {
			cur, err := getVolumeRow(ctx, tx, v.ID)
			if err != nil {
				return err
			}
			if migrating(cur) {
				return errs.E(errs.Invalid, "Invalid volume: Snapshot cannot be created while volume is migrating.")
			}
			return snapshotVolumeStatus(cur, valid)
		}
		if err := insertSnapshot(ctx, tx, sn); err != nil {
			return err
		}
		if err := s.charge(ctx, tx, opSnapshot, false, snapshotCharge(sn.ProjectID, sn.VolumeSize, sn.TypeID, 1)...); err != nil {
			return err
		}
		return s.addWork(ctx, tx, sn.ID, workSnapshot, workPayload{})
	})
	if err != nil {
		return err
	}
	s.wake()
	return reply(w, http.StatusAccepted, map[string]any{"snapshot": s.snapshotView(r, sn, snapshotDetail)})
}

// checkSnapshottable is Cinder's check of a volume to snapshot: the
// caller may, the volume is on a backend and in one of valid.
func checkSnapshottable(r *http.Request, v *vol, valid []string) error {
	if err := enforce(r, "volume:create_snapshot", v.ProjectID); err != nil {
		return err
	}
	switch {
	case v.Host == nil:
		return errs.E(errs.Invalid, "Invalid volume: The snapshot cannot be created because volume has not been scheduled to any host.")
	case v.Status == "maintenance":
		return errs.E(errs.Invalid, "Invalid volume: The snapshot cannot be created when the volume is in maintenance mode.")
	case migrating(v):
		return errs.E(errs.Invalid, "Invalid volume: Snapshot cannot be created while volume is migrating.")
	case v.Status == "error":
		return errs.E(errs.Invalid, "Invalid volume: The snapshot cannot be created when the volume is in error status.")
	}
	return snapshotVolumeStatus(v, valid)
}

// snapshotVolumeStatus refuses a volume whose status is not in valid.
func snapshotVolumeStatus(v *vol, valid []string) error {
	for _, st := range valid {
		if v.Status == st {
			return nil
		}
	}
	return errs.E(errs.Invalid, "Invalid volume: Volume %s status must be %s, but current status is: %s.",
		v.ID, strings.Join(valid, ", "), v.Status)
}

func (s *Service) showSnapshot(w http.ResponseWriter, r *http.Request) error {
	sn, err := s.snapshotFor(r.Context(), s.deps.DB, r, "volume:get_snapshot")
	if err != nil {
		return err
	}
	// Work that counts bytes (a snapshot copied rather than made at once)
	// shows its percent where Cinder's clients look.
	if v, err := s.activeProgress(r.Context(), sn.ID); err != nil {
		return err
	} else if v != nil {
		sn.Progress = progress.Percent(*v, sn.Progress)
		if err := s.setProgressHeader(w, r, sn.ID); err != nil {
			return err
		}
	}
	return reply(w, http.StatusOK, map[string]any{"snapshot": s.snapshotView(r, sn, snapshotShow)})
}

// snapshotUpdate is a validated snapshot update body.
type snapshotUpdate struct {
	Name, Description *string
	SetName, SetDesc  bool
}

func parseSnapshotUpdate(r *http.Request) (*snapshotUpdate, error) {
	in, err := decodeEntity(r, "snapshot")
	if err != nil {
		return nil, err
	}
	if err := checkAllowed("snapshot", in, "name", "description", "display_name", "display_description"); err != nil {
		return nil, err
	}
	u := &snapshotUpdate{}
	// The plain names override the display_ ones, as in Cinder.
	if u.Name, u.SetName, err = lastPresent(in, 255, "display_name", "name"); err != nil {
		return nil, err
	}
	if u.Description, u.SetDesc, err = lastPresent(in, 255, "display_description", "description"); err != nil {
		return nil, err
	}
	if !u.SetName && !u.SetDesc {
		return nil, invalidInput("snapshot", in, "%s is not valid under any of the given schemas", pyRepr(in, true))
	}
	u.Name, u.Description = trimmed(u.Name), trimmed(u.Description)
	return u, nil
}

func (s *Service) updateSnapshot(w http.ResponseWriter, r *http.Request) error {
	u, err := parseSnapshotUpdate(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var sn *snapshot
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		var err error
		if sn, err = s.snapshotFor(ctx, tx, r, "volume:update_snapshot"); err != nil {
			return err
		}
		if u.SetName {
			sn.Name = u.Name
		}
		if u.SetDesc {
			sn.Description = u.Description
		}
		sn.UpdatedAt = db.Now()
		return updateSnapshotText(ctx, tx, sn)
	})
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"snapshot": s.snapshotView(r, sn, snapshotDetail)})
}

func (s *Service) deleteSnapshot(w http.ResponseWriter, r *http.Request) error {
	sn, err := s.snapshotFor(r.Context(), s.deps.DB, r, "volume:delete_snapshot")
	if err != nil {
		return err
	}
	if err := s.beginSnapshotDelete(r.Context(), sn, false); err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

// deletableSnapshotStatuses are the statuses a snapshot may be deleted from
// without force (and that a volume's snapshots must be in for cascade).
var deletableSnapshotStatuses = []string{"available", "error"}

// beginSnapshotDelete moves the snapshot to deleting (from any status when
// force) and records the task that deletes it.
func (s *Service) beginSnapshotDelete(ctx context.Context, sn *snapshot, force bool) error {
	var from []string
	if !force {
		from = deletableSnapshotStatuses
	}
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		ok, err := setSnapshotStatus(ctx, tx, sn.ID, "deleting", from...)
		if err != nil {
			return err
		}
		if !ok {
			return errs.E(errs.Invalid, "Invalid snapshot: Snapshot status must be available or error and must not be part of a group.")
		}
		return s.addWork(ctx, tx, sn.ID, workSnapshotDelete, workPayload{})
	})
	if err == nil {
		s.wake()
	}
	return err
}

// snapshotListRequest is a validated snapshot list query.
type snapshotListRequest struct {
	filter snapshotFilter
	page   listPage
	mv     microversion
}

func parseSnapshotList(r *http.Request) (*snapshotListRequest, error) {
	l := &snapshotListRequest{mv: versionOf(r)}
	var err error
	if l.page, l.filter.scope, err = parseSortedList(r, l.apply, mvSnapshotSortName, snapshotSortColumns); err != nil {
		return nil, err
	}
	return l, nil
}

// apply reads one filter parameter; others are ignored, as Cinder drops
// the filters a caller may not use.
func (l *snapshotListRequest) apply(key, val string) error {
	f := &l.filter
	if f.listFilter.apply(key, val) {
		return nil
	}
	switch key {
	case "volume_id":
		f.VolumeID = &val
	case "availability_zone":
		f.AZ = &val
	case "metadata":
		if l.mv < mvSnapshotMetadataList {
			return nil
		}
		md, err := parseDictParam(val)
		if err != nil {
			// Cinder then filters on a string, which matches nothing.
			f.None = true
			return nil
		}
		f.Metadata = md
	case "consumes_quota":
		if l.mv < mvUseQuota {
			return nil
		}
		b, err := parseBool("consumes_quota", val)
		if err != nil {
			return errs.E(errs.Invalid, "Value '%s' for 'consumes_quota' is not a boolean.", val)
		}
		f.None = f.None || !b
	}
	return nil
}

func (s *Service) snapshotList(w http.ResponseWriter, r *http.Request, detail bool) error {
	if err := enforce(r, "volume:get_all_snapshots", ""); err != nil {
		return err
	}
	l, err := parseSnapshotList(r)
	if err != nil {
		return err
	}
	snaps, more, err := readOwnedPage(r, s.deps.DB, l.page, getSnapshotRow, snapshotNotFound,
		listSnapshots, l.filter, loadSnapshotKVs)
	if err != nil {
		return err
	}
	shape := snapshotSummary
	if detail {
		shape = snapshotShow
	}
	view := func(r *http.Request, sn *snapshot) map[string]any { return s.snapshotView(r, sn, shape) }
	return reply(w, http.StatusOK, listBody(s, r, "snapshots", "/snapshots", detail, snaps, more, l.page.Limit,
		func(sn *snapshot) string { return sn.ID }, view))
}
