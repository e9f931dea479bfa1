package volume

// The backups API (/backups): create, list, show, update, delete, restore,
// the admin actions and export/import of records. Backups are made,
// restored and deleted by durable tasks (backup_work.go) through the
// chunk engine of package backup.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Microversions that change backups.
const (
	mvBackupUpdate        = 9  // PUT /backups/{id}
	mvBackupProject       = 18 // os-backup-project-attr:project_id
	mvBackupSortName      = 37 // sort by name
	mvBackupMetadata      = 43 // metadata
	mvBackupCount         = 45 // with_count
	mvBackupAZ            = 51 // availability_zone on create
	mvBackupProjectUserID = 56 // user_id
)

// importVolumeID is the volume_id of an imported backup record (Cinder's
// IMPORT_VOLUME_ID): the volume it was made from is not known here.
const importVolumeID = "00000000-0000-0000-0000-000000000000"

// errNoBackupService is Cinder's answer when no backup service runs.
var errNoBackupService = errs.E(errs.Unavailable, "Service cinder-backup could not be found.")

// backupRoutes registers the backups API under p ("/v3/{project_id}").
func (s *Service) backupRoutes(m *api.Mux, p string) {
	m.Handle("GET "+p+"/backups", lister(s.backupList, false))
	m.Handle("GET "+p+"/backups/detail", lister(s.backupList, true))
	m.Handle("POST "+p+"/backups", handler(s.createBackup))
	m.Handle("POST "+p+"/backups/import_record", handler(s.importBackupRecord))
	m.Handle("GET "+p+"/backups/{backup_id}", handler(s.showBackup))
	m.Handle("PUT "+p+"/backups/{backup_id}", handler(s.updateBackup))
	m.Handle("DELETE "+p+"/backups/{backup_id}", handler(s.deleteBackup))
	m.Handle("POST "+p+"/backups/{backup_id}/restore", handler(s.restoreBackup))
	m.Handle("POST "+p+"/backups/{backup_id}/action", handler(s.backupAction))
	m.Handle("GET "+p+"/backups/{backup_id}/export_record", handler(s.exportBackupRecord))
}

// backupFor loads the request's backup: another project's backup is not
// found for non-admins, then action is enforced against its project.
func (s *Service) backupFor(ctx context.Context, q db.Querier, r *http.Request, action string) (*backupRow, error) {
	return loadOwned(ctx, q, r, r.PathValue("backup_id"), action, getBackup, backupNotFound)
}

func (s *Service) backupLinks(r *http.Request, id string) []map[string]string {
	return []map[string]string{
		{"rel": "self", "href": s.linkBase(r) + "/backups/" + id},
		{"rel": "bookmark", "href": s.bookmarkBase(r) + "/backups/" + id}}
}

// backupSummary is the create, update, import and list shape.
func (s *Service) backupSummary(r *http.Request, b *backupRow) map[string]any {
	return map[string]any{"id": b.ID, "name": b.Name, "links": s.backupLinks(r, b.ID)}
}

// backupView is the show and detail shape at the request's microversion.
func (s *Service) backupView(r *http.Request, b *backupRow) map[string]any {
	m := map[string]any{
		"id": b.ID, "status": b.Status, "size": b.Size, "object_count": b.ObjectCount,
		"availability_zone": b.AZ, "container": b.Container, "created_at": fmtTime(b.CreatedAt),
		"updated_at": fmtTime(b.UpdatedAt), "name": b.Name, "description": b.Description,
		"fail_reason": b.FailReason, "volume_id": b.VolumeID, "links": s.backupLinks(r, b.ID),
		"is_incremental": b.ParentID != nil, "has_dependent_backups": b.HasDependents,
		"snapshot_id": b.SnapshotID, "data_timestamp": fmtTime(b.DataTimestamp),
	}
	mv := versionOf(r)
	if mv >= mvBackupMetadata {
		md := map[string]string{}
		for k, v := range b.Metadata {
			md[k] = v
		}
		m["metadata"] = md
	}
	attrs := allowed(r, "backup:backup_project_attribute", b.ProjectID)
	if mv >= mvBackupProject && attrs {
		m["os-backup-project-attr:project_id"] = b.ProjectID
	}
	if mv >= mvBackupProjectUserID && attrs {
		m["user_id"] = b.UserID
	}
	return m
}

// backupCreateRequest is a validated backup create body.
type backupCreateRequest struct {
	VolumeID           string
	Container          *string
	Name, Description  *string
	Incremental, Force bool
	SnapshotID         *string
	Metadata           map[string]string
	AZ                 *string
}

func parseBackupCreate(r *http.Request) (*backupCreateRequest, error) {
	in, err := decodeEntity(r, "backup")
	if err != nil {
		return nil, err
	}
	mv := versionOf(r)
	allowedKeys := []string{"volume_id", "container", "description", "incremental", "force", "name", "snapshot_id"}
	if mv >= mvBackupMetadata {
		allowedKeys = append(allowedKeys, "metadata")
	}
	if mv >= mvBackupAZ {
		allowedKeys = append(allowedKeys, "availability_zone")
	}
	if err := checkAllowed("backup", in, allowedKeys...); err != nil {
		return nil, err
	}
	c := &backupCreateRequest{Metadata: map[string]string{}}
	raw, ok := in["volume_id"]
	if !ok {
		return nil, invalidInput("backup", in, "'volume_id' is a required property")
	}
	id, ok := raw.(string)
	if !ok || !isUUID(id) {
		return nil, invalidInput("volume_id", raw, "%s is not a 'uuid'", pyRepr(raw, true))
	}
	c.VolumeID = id
	if c.Container, err = optString(in, "container", 255); err != nil {
		return nil, err
	}
	if c.Container != nil && !backupNameOK(*c.Container) {
		return nil, invalidInput("container", *c.Container, "%s is not a valid container name", pyRepr(*c.Container, true))
	}
	if c.Name, err = optString(in, "name", 255); err != nil {
		return nil, err
	}
	if c.Description, err = optString(in, "description", 255); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		key string
		dst *bool
	}{{"incremental", &c.Incremental}, {"force", &c.Force}} {
		if v, ok := in[f.key]; ok {
			if *f.dst, err = parseBool(f.key, v); err != nil {
				return nil, err
			}
		}
	}
	if raw, ok := in["snapshot_id"]; ok && raw != nil {
		sid, ok := raw.(string)
		if !ok || !isUUID(sid) {
			return nil, invalidInput("snapshot_id", raw, "%s is not valid under any of the given schemas", pyRepr(raw, true))
		}
		c.SnapshotID = &sid
	}
	if md := in["metadata"]; md != nil {
		if c.Metadata, err = parseMetadata("metadata", md); err != nil {
			return nil, err
		}
	}
	if c.AZ, err = optString(in, "availability_zone", 255); err != nil {
		return nil, err
	}
	c.Name, c.Description = trimmed(c.Name), trimmed(c.Description)
	return c, nil
}

func (s *Service) createBackup(w http.ResponseWriter, r *http.Request) error {
	req, err := parseBackupCreate(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	v, err := loadOwned(ctx, s.deps.DB, r, req.VolumeID, "backup:create", getVolume, volumeNotFound)
	if err != nil {
		return err
	}
	if s.backups == nil || (req.AZ != nil && *req.AZ != "" && !s.knownAZ(*req.AZ)) {
		return errNoBackupService
	}
	c := caller(r)
	b := &backupRow{ID: uuid.NewString(), ProjectID: c.ProjectID, UserID: c.UserID, VolumeID: v.ID,
		Name: req.Name, Description: req.Description, Status: "creating", Container: s.deps.Config.Backup.Container,
		Size: v.Size, Metadata: req.Metadata, CreatedAt: db.Now()}
	b.Objects = b.ID
	if req.Container != nil && *req.Container != "" {
		b.Container = *req.Container
	}
	az := v.AZ
	if req.AZ != nil && *req.AZ != "" {
		az = *req.AZ
	}
	b.AZ = &az
	var sn *snapshot
	if req.SnapshotID != nil {
		if sn, err = getSnapshotRow(ctx, s.deps.DB, *req.SnapshotID); err == nil && !visible(r, sn) {
			err = snapshotNotFound(sn.ID)
		}
		if err != nil {
			return err
		}
		if sn.VolumeID != v.ID {
			return errs.E(errs.Invalid, "Invalid volume: Volume %s does not match with snapshot.volume_id %s.", v.ID, sn.VolumeID)
		}
		if sn.Status != "available" {
			return errs.E(errs.Invalid, "Invalid snapshot: Snapshot to be backed up must be available, but the current status is \"%s\".", sn.Status)
		}
		b.SnapshotID, b.DataTimestamp = &sn.ID, sn.CreatedAt
	} else {
		if err := backupVolumeStatus(v, req.Force); err != nil {
			return err
		}
		b.DataTimestamp = b.CreatedAt
		prev := v.Status
		b.PreviousStatus = &prev
	}
	if v.Host == nil || s.backendOf(v) == nil {
		return errs.E(errs.Invalid, "Invalid volume: Volume %s is not on an available backend.", v.ID)
	}
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if req.Incremental {
			var before db.Timestamp
			if sn != nil {
				before = sn.CreatedAt
			}
			parent, err := latestBackup(ctx, tx, v.ID, c.ProjectID, before)
			if errs.KindOf(err) == errs.NotFound {
				return errs.E(errs.Invalid, "Invalid backup: No backups available to do an incremental backup.")
			}
			if err != nil {
				return err
			}
			if parent.Status != "available" {
				return errs.E(errs.Invalid, "Invalid backup: The parent backup must be available for incremental backup.")
			}
			b.ParentID = &parent.ID
		}
		// The volume (or snapshot) may have changed since it was read.
		if sn != nil {
			ok, err := setSnapshotStatus(ctx, tx, sn.ID, "backing-up", "available")
			if err != nil {
				return err
			}
			if !ok {
				cur, err := getSnapshotRow(ctx, tx, sn.ID)
				if err != nil {
					return err
				}
				return errs.E(errs.Invalid, "Invalid snapshot: Snapshot to be backed up must be available, but the current status is \"%s\".", cur.Status)
			}
		} else if err := setStatus(ctx, tx, v.ID, "backing-up", *b.PreviousStatus); err != nil {
			cur, gerr := getVolumeRow(ctx, tx, v.ID)
			if gerr != nil {
				return gerr
			}
			if serr := backupVolumeStatus(cur, req.Force); serr != nil {
				return serr
			}
			return err
		}
		if err := insertBackup(ctx, tx, b); err != nil {
			return err
		}
		if err := s.charge(ctx, tx, opBackup, false, backupCharge(b.ProjectID, b.Size, 1)...); err != nil {
			return err
		}
		return s.addWork(ctx, tx, b.ID, workBackup, workPayload{ProjectID: b.ProjectID})
	})
	if err != nil {
		return err
	}
	s.wake()
	return reply(w, http.StatusAccepted, map[string]any{"backup": s.backupSummary(r, b)})
}

// backupVolumeStatus is Cinder's check of a volume to back up.
func backupVolumeStatus(v *vol, force bool) error {
	switch {
	case v.Status != "available" && v.Status != "in-use":
		return errs.E(errs.Invalid, "Invalid volume: Volume to be backed up must be available or in-use, but the current status is \"%s\".", v.Status)
	case v.Status == "in-use" && !force:
		return errs.E(errs.Invalid, "Invalid volume: Backing up an in-use volume must use the force flag.")
	case migrating(v):
		return errs.E(errs.Invalid, "Invalid volume: Volume to be backed up must not be migrating.")
	}
	return nil
}

// backupNameOK reports whether a container name can name objects (the
// first part of every object key, a directory of the posix driver).
func backupNameOK(s string) bool {
	if s == "" {
		return true
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return s[0] != '.' && s[0] != '-' && s[0] != '_'
}

func (s *Service) showBackup(w http.ResponseWriter, r *http.Request) error {
	b, err := s.backupFor(r.Context(), s.deps.DB, r, "backup:get")
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"backup": s.backupView(r, b)})
}

func (s *Service) updateBackup(w http.ResponseWriter, r *http.Request) error {
	mv := versionOf(r)
	if mv < mvBackupUpdate {
		return errs.E(errs.NotFound, "The resource could not be found.")
	}
	in, err := decodeEntity(r, "backup")
	if err != nil {
		return err
	}
	keys := []string{"name", "description"}
	if mv >= mvBackupMetadata {
		keys = append(keys, "metadata")
	}
	if err := checkAllowed("backup", in, keys...); err != nil {
		return err
	}
	name, err := optString(in, "name", 255)
	if err != nil {
		return err
	}
	desc, err := optString(in, "description", 255)
	if err != nil {
		return err
	}
	var md map[string]string
	if raw, ok := in["metadata"]; ok {
		if md, err = parseMetadata("metadata", raw); err != nil {
			return err
		}
	}
	ctx := r.Context()
	var b *backupRow
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		var err error
		if b, err = s.backupFor(ctx, tx, r, "backup:update"); err != nil {
			return err
		}
		if _, ok := in["name"]; ok {
			b.Name = trimmed(name)
		}
		if _, ok := in["description"]; ok {
			b.Description = trimmed(desc)
		}
		b.UpdatedAt = db.Now()
		if err := updateBackupText(ctx, tx, b); err != nil {
			return err
		}
		if md != nil {
			b.Metadata = md
			return replaceKV(ctx, tx, setBackupMetadata, b.ID, md)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"backup": s.backupSummary(r, b)})
}

func (s *Service) deleteBackup(w http.ResponseWriter, r *http.Request) error {
	b, err := s.backupFor(r.Context(), s.deps.DB, r, "backup:delete")
	if err != nil {
		return err
	}
	if err := s.beginBackupDelete(r.Context(), b, false); err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

// beginBackupDelete moves the backup to deleting (from any status when
// force) and records the task that deletes it. A backup that incremental
// backups build on is not deleted.
func (s *Service) beginBackupDelete(ctx context.Context, b *backupRow, force bool) error {
	if s.backups == nil {
		return errNoBackupService
	}
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		cur, err := getBackupRow(ctx, tx, b.ID)
		if err != nil {
			return err
		}
		if !force && cur.Status != "available" && cur.Status != "error" {
			return errs.E(errs.Invalid, "Invalid backup: Backup status must be available or error")
		}
		if cur.HasDependents {
			return errs.E(errs.Invalid, "Invalid backup: Incremental backups exist for this backup.")
		}
		ok, err := setBackupStatus(ctx, tx, b.ID, "deleting", cur.Status)
		if err != nil {
			return err
		}
		if !ok {
			return errs.E(errs.Invalid, "Invalid backup: Backup status must be available or error")
		}
		return s.addWork(ctx, tx, b.ID, workBackupDelete, workPayload{ProjectID: b.ProjectID, PreviousStatus: cur.Status})
	})
	if err == nil {
		s.wake()
	}
	return err
}

// restoreWait bounds how long a restore into a new volume waits for that
// volume to be created (Cinder waits too, polling).
var restoreWait = 2 * time.Minute

func (s *Service) restoreBackup(w http.ResponseWriter, r *http.Request) error {
	body, err := decodeObject(r)
	if err != nil {
		return err
	}
	raw, ok := body["restore"]
	if !ok {
		return invalidInput("restore", body, "'restore' is a required property")
	}
	if err := checkAllowed("", body, "restore"); err != nil {
		return err
	}
	in := map[string]any{}
	if raw != nil {
		if in, ok = raw.(map[string]any); !ok {
			return invalidInput("restore", raw, "%s is not of type 'object', 'null'", pyRepr(raw, true))
		}
	}
	if err := checkAllowed("restore", in, "name", "volume_id"); err != nil {
		return err
	}
	var volumeID *string
	if raw := in["volume_id"]; raw != nil {
		id, ok := raw.(string)
		if !ok || !isUUID(id) {
			return invalidInput("volume_id", raw, "%s is not valid under any of the given schemas", pyRepr(raw, true))
		}
		volumeID = &id
	}
	name, err := optString(in, "name", 255)
	if err != nil {
		return err
	}
	ctx := r.Context()
	b, err := s.backupFor(ctx, s.deps.DB, r, "backup:restore")
	if err != nil {
		return err
	}
	if b.Status != "available" {
		return errs.E(errs.Invalid, "Invalid backup: Backup status must be available")
	}
	if s.backups == nil {
		return errNoBackupService
	}
	var v *vol
	if volumeID == nil {
		if v, err = s.restoreTarget(r, b, name); err != nil {
			return err
		}
	} else {
		if v, err = getVolume(ctx, s.deps.DB, *volumeID); err == nil && !visible(r, v) {
			err = volumeNotFound(*volumeID)
		}
		if err != nil {
			return err
		}
	}
	if v.Status != "available" {
		return errs.E(errs.Invalid, "Invalid volume: Volume to be restored to must be available")
	}
	if b.Size > v.Size {
		return errs.E(errs.Invalid, "Invalid volume: volume size %d is too small to restore backup of size %d.", v.Size, b.Size)
	}
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		ok, err := beginBackupRestore(ctx, tx, b.ID, v.ID)
		if err != nil {
			return err
		}
		if !ok {
			return errs.E(errs.Invalid, "Invalid backup: Backup status must be available")
		}
		if err := setStatus(ctx, tx, v.ID, "restoring-backup", "available"); err != nil {
			return errs.E(errs.Invalid, "Invalid volume: Volume to be restored to must be available")
		}
		return s.addWork(ctx, tx, b.ID, workBackupRestore, workPayload{ProjectID: b.ProjectID, VolumeID: v.ID})
	})
	if err != nil {
		return err
	}
	s.wake()
	return reply(w, http.StatusAccepted, map[string]any{"restore": map[string]any{
		"backup_id": b.ID, "volume_id": v.ID, "volume_name": v.Name}})
}

// restoreTarget creates the volume a restore without volume_id goes to,
// of the backup's size, and waits for it to be available, as Cinder does.
func (s *Service) restoreTarget(r *http.Request, b *backupRow, name *string) (*vol, error) {
	if err := enforce(r, "volume:create", ""); err != nil {
		return nil, err
	}
	if name == nil {
		n := "restore_backup_" + b.ID
		name = &n
	}
	desc := "auto-created_from_restore_from_backup"
	v := newVolume(caller(r), &createRequest{Name: name, Description: &desc, Size: b.Size, Metadata: map[string]string{}})
	if err := s.assignType(r, v, nil); err != nil {
		return nil, err
	}
	if err := s.assignAZ(v, nil); err != nil {
		return nil, err
	}
	ctx := r.Context()
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if err := insertVolume(ctx, tx, v); err != nil {
			return err
		}
		if err := s.chargeNewVolume(ctx, tx, v); err != nil {
			return err
		}
		return s.addWork(ctx, tx, v.ID, workCreate, workPayload{Size: v.Size, AZ: v.AZ, ProjectID: v.ProjectID})
	})
	if err != nil {
		return nil, err
	}
	s.wake()
	deadline := time.Now().Add(restoreWait)
	for {
		cur, err := getVolume(ctx, s.deps.DB, v.ID)
		if err != nil {
			return nil, err
		}
		if cur.Status != "creating" || time.Now().After(deadline) {
			if cur.Status != "available" {
				return nil, errs.E(errs.Invalid, "Invalid volume: Error while creating volume %s for restoring backup %s.", v.ID, b.ID)
			}
			return cur, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Service) backupAction(w http.ResponseWriter, r *http.Request) error {
	return dispatchAction(w, r, map[string]actionHandler{
		"os-reset_status": s.actBackupResetStatus,
		"os-force_delete": s.actBackupForceDelete,
	})
}

// backupStatuses are the statuses os-reset_status may set.
var backupStatuses = []string{"available", "error"}

func (s *Service) actBackupResetStatus(w http.ResponseWriter, r *http.Request, arg any) error {
	_, st, err := snapshotStatusArg("os-reset_status", arg)
	if err != nil {
		return err
	}
	if !slices.Contains(backupStatuses, strings.ToLower(st)) {
		return errs.E(errs.Invalid, "Invalid input for field/attribute status. Value: %s. Backup status: %s is invalid, valid statuses are: ['available', 'error'].", st, st)
	}
	ctx := r.Context()
	b, err := s.backupFor(ctx, s.deps.DB, r, "volume_extension:backup_admin_actions:reset_status")
	if err != nil {
		return err
	}
	if s.backups == nil {
		return errNoBackupService
	}
	if _, err := setBackupStatus(ctx, s.deps.DB, b.ID, strings.ToLower(st)); err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

func (s *Service) actBackupForceDelete(w http.ResponseWriter, r *http.Request, _ any) error {
	return forceDeleteOf(w, r, s.deps.DB, s.backupFor, s.beginBackupDelete,
		"backup:get", "volume_extension:backup_admin_actions:force_delete", "backup:delete")
}

// backupListRequest is a validated backup list query.
type backupListRequest struct {
	filter    backupFilter
	page      listPage
	withCount bool
	mv        microversion
	admin     bool
}

func parseBackupList(r *http.Request) (*backupListRequest, error) {
	l := &backupListRequest{mv: versionOf(r), admin: caller(r).IsAdmin()}
	var err error
	if l.page, l.filter.scope, err = parseSortedList(r, l.apply, mvBackupSortName, backupSortColumns); err != nil {
		return nil, err
	}
	return l, nil
}

// apply reads one filter parameter: name, status and volume_id for
// everyone, more for admins; others are ignored, as Cinder drops them.
func (l *backupListRequest) apply(key, val string) error {
	f := &l.filter
	if f.listFilter.apply(key, val) {
		return nil
	}
	switch key {
	case "volume_id":
		f.VolumeID = &val
	case "with_count":
		if l.mv >= mvBackupCount {
			b, err := parseBool("with_count", val)
			if err != nil {
				return err
			}
			l.withCount = b
		}
	case "availability_zone", "parent_id", "snapshot_id":
		if !l.admin {
			return nil
		}
		switch key {
		case "availability_zone":
			f.AZ = &val
		case "parent_id":
			f.ParentID = &val
		default:
			f.SnapshotID = &val
		}
	case "metadata":
		if l.mv < mvBackupMetadata {
			return nil
		}
		md, err := parseDictParam(val)
		if err != nil {
			return errs.E(errs.Invalid, "Invalid input received: metadata filter %q is not a dict.", val)
		}
		f.Metadata = md
	}
	return nil
}

func (s *Service) backupList(w http.ResponseWriter, r *http.Request, detail bool) error {
	if err := enforce(r, "backup:get_all", ""); err != nil {
		return err
	}
	l, err := parseBackupList(r)
	if err != nil {
		return err
	}
	var count int64
	rows, more, err := readOwnedPage(r, s.deps.DB, l.page, getBackupRow, backupNotFound, listBackups, l.filter,
		func(ctx context.Context, q db.Querier, rows []*backupRow) error {
			if l.withCount {
				var err error
				if count, err = countBackups(ctx, q, l.filter); err != nil {
					return err
				}
			}
			return loadBackupKVs(ctx, q, rows)
		})
	if err != nil {
		return err
	}
	view := s.backupSummary
	if detail {
		view = s.backupView
	}
	resp := listBody(s, r, "backups", "/backups", detail, rows, more, l.page.Limit,
		func(b *backupRow) string { return b.ID }, view)
	if l.withCount {
		resp["count"] = count
	}
	return reply(w, http.StatusOK, resp)
}

// backupRecord is what an exported backup_url holds (base64 JSON, as
// Cinder's): the backup's fields, enough to find its objects again.
type backupRecord struct {
	ID              string            `json:"id"`
	Size            *int64            `json:"size"`
	VolumeID        string            `json:"volume_id,omitempty"`
	SnapshotID      *string           `json:"snapshot_id,omitempty"`
	ParentID        *string           `json:"parent_id,omitempty"`
	DisplayName     *string           `json:"display_name,omitempty"`
	Description     *string           `json:"display_description,omitempty"`
	Container       string            `json:"container"`
	ServiceMetadata string            `json:"service_metadata"`
	ObjectCount     int64             `json:"object_count"`
	StoredBytes     int64             `json:"stored_bytes,omitempty"`
	AZ              *string           `json:"availability_zone,omitempty"`
	DataTimestamp   string            `json:"data_timestamp,omitempty"`
	CreatedAt       string            `json:"created_at,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
}

// backupServiceNames are the backup_service names of a record: Cinder's
// class path of the driver (which tempest expects) by driver name.
var backupServiceNames = map[string]string{
	"posix": "cinder.backup.drivers.posix.PosixBackupDriver",
	"s3":    "cinder.backup.drivers.s3.S3BackupDriver",
}

func (s *Service) exportBackupRecord(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	b, err := s.backupFor(ctx, s.deps.DB, r, "backup:export-import")
	if err != nil {
		return err
	}
	if b.Status != "available" {
		return errs.E(errs.Invalid, "Invalid backup: Backup status must be available and not %s.", b.Status)
	}
	if s.backups == nil {
		return errNoBackupService
	}
	size := b.Size
	rec := backupRecord{ID: b.ID, Size: &size, VolumeID: b.VolumeID, SnapshotID: b.SnapshotID, ParentID: b.ParentID,
		DisplayName: b.Name, Description: b.Description, Container: b.Container, ServiceMetadata: b.Objects,
		ObjectCount: b.ObjectCount, StoredBytes: b.StoredBytes, AZ: b.AZ, DataTimestamp: b.DataTimestamp.String(),
		CreatedAt: b.CreatedAt.String(), Metadata: b.Metadata}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"backup-record": map[string]any{
		"backup_service": backupServiceNames[s.deps.Config.Backup.Driver],
		"backup_url":     base64.StdEncoding.EncodeToString(data)}})
}

func (s *Service) importBackupRecord(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "backup:backup-import", ""); err != nil {
		return err
	}
	in, err := decodeEntity(r, "backup-record")
	if err != nil {
		return err
	}
	if err := checkAllowed("backup-record", in, "backup_service", "backup_url"); err != nil {
		return err
	}
	var service, url string
	for _, f := range []struct {
		key string
		dst *string
	}{{"backup_service", &service}, {"backup_url", &url}} {
		raw, ok := in[f.key]
		if !ok {
			return invalidInput("backup-record", in, "'%s' is a required property", f.key)
		}
		str, ok := raw.(string)
		if !ok {
			return invalidInput(f.key, raw, "%s is not of type 'string'", pyRepr(raw, true))
		}
		*f.dst = str
	}
	if s.backups == nil || (service != s.deps.Config.Backup.Driver && service != backupServiceNames[s.deps.Config.Backup.Driver]) {
		return errs.E(errs.Unavailable, "Service %s could not be found.", service)
	}
	data, err := base64.StdEncoding.DecodeString(url)
	var rec backupRecord
	if err == nil {
		err = json.Unmarshal(data, &rec)
	}
	if err != nil {
		return errs.E(errs.Invalid, "Invalid input received: Can't parse backup record.")
	}
	if rec.ID == "" {
		return errs.E(errs.Invalid, "Invalid input received: Provided backup record is missing an id")
	}
	if rec.Size == nil {
		return errs.E(errs.Invalid, "Invalid input received: Provided backup record is missing size attribute")
	}
	if !isUUID(rec.ID) || !backupNameOK(rec.Container) || rec.Container == "" {
		return errs.E(errs.Invalid, "Invalid input received: Provided backup record is not valid")
	}
	if rec.ServiceMetadata == "" {
		rec.ServiceMetadata = rec.ID
	}
	ctx := r.Context()
	// The record must name a complete backup in the store.
	m, err := s.backups.Manifest(ctx, rec.Container, rec.ServiceMetadata)
	if errs.KindOf(err) == errs.NotFound || errs.KindOf(err) == errs.Invalid {
		return errs.E(errs.Invalid, "Invalid backup: Backup %s is not in the backup storage.", rec.ID)
	}
	if err != nil {
		return err
	}
	c := caller(r)
	now := db.Now()
	b := &backupRow{ID: rec.ID, ProjectID: c.ProjectID, UserID: c.UserID, VolumeID: importVolumeID,
		SnapshotID: rec.SnapshotID, ParentID: rec.ParentID, Name: rec.DisplayName, Description: rec.Description,
		Status: "available", AZ: rec.AZ, Container: rec.Container, Objects: rec.ServiceMetadata, Size: *rec.Size,
		ObjectCount: int64(m.Objects()), StoredBytes: m.StoredBytes(), Metadata: rec.Metadata, CreatedAt: now, DataTimestamp: now}
	if b.Metadata == nil {
		b.Metadata = map[string]string{}
	}
	if t, err := time.Parse(db.TimeFormat, rec.DataTimestamp); err == nil {
		b.DataTimestamp = db.Timestamp{Time: t}
	}
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if _, err := getBackupRow(ctx, tx, b.ID); err == nil {
			return errs.E(errs.Invalid, "Invalid backup: Backup already exists in database.")
		}
		if err := importBackupRow(ctx, tx, b); err != nil {
			return err
		}
		return s.charge(ctx, tx, opBackup, false, backupCharge(b.ProjectID, b.Size, 1)...)
	})
	if err != nil {
		return err
	}
	return reply(w, http.StatusCreated, map[string]any{"backup": s.backupSummary(r, b)})
}
