package volume

import (
	"context"
	"net/http"
	"sort"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/task"
)

// actionHandler serves one volume action; arg is the value under the
// action's key in the request body.
type actionHandler func(w http.ResponseWriter, r *http.Request, arg any) error

// volumeAction dispatches POST /volumes/{id}/action on the body's one key.
func (s *Service) volumeAction(w http.ResponseWriter, r *http.Request) error {
	handlers := map[string]actionHandler{
		"os-extend":                s.actExtend,
		"os-reset_status":          s.actResetStatus,
		"os-set_bootable":          s.actSetBootable,
		"os-update_readonly_flag":  s.actReadonly,
		"os-reserve":               s.actReserve,
		"os-unreserve":             s.actUnreserve,
		"os-set_image_metadata":    s.actSetImageMetadata,
		"os-unset_image_metadata":  s.actUnsetImageMetadata,
		"os-show_image_metadata":   s.actShowImageMetadata,
		"os-retype":                s.actRetype,
		"os-force_delete":          s.actForceDelete,
		"revert":                   s.actRevert,
		"os-volume_upload_image":   s.actUploadImage,
		"os-attach":                s.actAttach,
		"os-detach":                s.actDetach,
		"os-begin_detaching":       s.actBeginDetaching,
		"os-roll_detaching":        s.actRollDetaching,
		"os-initialize_connection": s.actInitializeConnection,
		"os-terminate_connection":  s.actTerminateConnection,
		"os-force_detach":          s.actForceDetach,

		"os-migrate_volume":            s.actMigrate,
		"os-migrate_volume_completion": s.actMigrateCompletion,
	}
	return dispatchAction(w, r, handlers)
}

// dispatchAction serves POST .../action with the handler of the body's
// key (the first known one, in key order).
func dispatchAction(w http.ResponseWriter, r *http.Request, handlers map[string]actionHandler) error {
	body, err := decodeObject(r)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(body))
	for k := range body {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if h, ok := handlers[k]; ok {
			return h(w, r, body[k])
		}
	}
	name := ""
	if len(keys) > 0 {
		name = keys[0]
	}
	return errs.E(errs.Invalid, "There is no such action: %s", name)
}

// forceDeleteOf is os-force_delete of a snapshot or a backup: load (in q)
// finds the row for the resource's read policy getAction, the caller must
// also pass the admin action's forceAction and the resource's
// deleteAction, then begin deletes the row from any status (force).
func forceDeleteOf[T owned](w http.ResponseWriter, r *http.Request, q db.Querier,
	load func(context.Context, db.Querier, *http.Request, string) (T, error), begin func(context.Context, T, bool) error,
	getAction, forceAction, deleteAction string) error {
	ctx := r.Context()
	row, err := load(ctx, q, r, getAction)
	if err == nil {
		err = enforce(r, forceAction, row.projectID())
	}
	if err == nil {
		err = enforce(r, deleteAction, row.projectID())
	}
	if err != nil {
		return err
	}
	if err := begin(ctx, row, true); err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

func argObject(action string, v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalidInput(action, v, "%s is not of type 'object'", pyRepr(v, true))
	}
	return m, nil
}

// parseExtend reads os-extend's new size.
func parseExtend(arg any) (int64, error) {
	m, err := argObject("os-extend", arg)
	if err != nil {
		return 0, err
	}
	raw, ok := m["new_size"]
	if !ok {
		return 0, invalidInput("os-extend", m, "'new_size' is a required property")
	}
	if raw == nil {
		return 0, invalidInput("new_size", raw, "None is not of type 'integer', 'string'")
	}
	return parseSize(raw)
}

func (s *Service) actExtend(w http.ResponseWriter, r *http.Request, arg any) error {
	newSize, err := parseExtend(arg)
	if err != nil {
		return err
	}
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume:extend")
	if err != nil {
		return err
	}
	// From 3.42 an in-use volume grows too (Cinder's
	// extend_attached_volume): the file an attached host opened grows
	// under it, as a LUN grows, and the volume is in-use again after.
	from := "available"
	if versionOf(r) >= mvExtendInUse && v.Status == "in-use" {
		if err := enforce(r, "volume:extend_attached_volume", v.ProjectID); err != nil {
			return err
		}
		from = "in-use"
	}
	if v.Status != from {
		return errs.E(errs.Invalid, "Invalid volume: Volume %s status must be available, but current status is: %s.", v.ID, v.Status)
	}
	if newSize <= v.Size {
		return errs.E(errs.Invalid, "Invalid input received: New size for extend must be greater than current size. (current: %d, extended: %d).", v.Size, newSize)
	}
	tk, err := s.beginExtend(ctx, v, newSize, from)
	if err != nil {
		return err
	}
	defer tk.Release()
	bg := context.WithoutCancel(ctx)
	if busy, err := s.extendWhileCopied(ctx, v); err != nil || busy {
		if rerr := s.endExtend(bg, v, newSize, false, tk, func(q db.Querier) error {
			return setStatus(bg, q, v.ID, from, "extending")
		}); rerr != nil {
			return rerr
		}
		if err == nil {
			err = errs.E(errs.Invalid, "Invalid volume: Volume %s has a snapshot or clone being created.", v.ID)
		}
		return err
	}
	if err := s.extend(bg, v, newSize, api.RequestID(ctx), tk); err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

// extend grows an extending volume to newSize GiB under tk. A failure
// leaves it in error_extending with a user message. A volume on no (known)
// backend, such as one reset to available that was never scheduled, fails
// the same way: Cinder accepts the extend and its scheduler fails it, so
// the caller still gets its 202 (a 503 would blame the service for the
// volume's state).
func (s *Service) extend(ctx context.Context, v *vol, newSize int64, requestID string, tk *task.Task) error {
	b := s.backendOf(v)
	if b == nil {
		return s.failExtend(ctx, v, newSize, requestID, tk, nil)
	}
	if err := b.drv.Extend(ctx, v.ID, newSize*gib); err != nil {
		return s.failExtend(ctx, v, newSize, requestID, tk, err)
	}
	return s.endExtend(ctx, v, newSize, true, tk, func(tx db.Querier) error { return setExtended(ctx, tx, v.ID, newSize) })
}

// failExtend ends a failed extend: error_extending, a user message, and
// cause returned.
func (s *Service) failExtend(ctx context.Context, v *vol, newSize int64, requestID string, tk *task.Task, cause error) error {
	if err := s.endExtend(ctx, v, newSize, false, tk, func(tx db.Querier) error {
		return forceStatus(ctx, tx, v.ID, "error_extending")
	}); err != nil {
		return err
	}
	s.recordMessage(ctx, v.ProjectID, v.ID, requestID, eventExtend, "extend volume:Compute service failed to extend volume.")
	return cause
}

// runExtend resumes (or, giving up, fails) the extend of a volume whose
// node died before it ended: the driver's extend is done again (growing to
// the size it already has is fine) and ended as the request would have.
// A volume no longer extending was ended, task and all, before.
func (s *Service) runExtend(ctx context.Context, w *work, v *vol, giveUp bool) error {
	if v.Status != "extending" {
		return nil
	}
	if giveUp {
		return s.failExtend(ctx, v, w.Payload.Size, w.RequestID, w.t, nil)
	}
	return s.extend(ctx, v, w.Payload.Size, w.RequestID, w.t)
}

var validStatuses = map[string]bool{"available": true, "creating": true, "deleting": true, "error": true,
	"error_deleting": true, "error_managing": true, "managing": true, "attaching": true, "in-use": true,
	"detaching": true, "maintenance": true, "reserved": true, "error_restoring": true, "error_extending": true,
	"extending": true, "uploading": true, "downloading": true, "retyping": true, "backing-up": true, "restoring-backup": true}

// resetRequest is a validated os-reset_status argument; nil fields are not
// changed.
type resetRequest struct {
	Status, AttachStatus *string
	// MigrationStatus is set when the migration status changes; "none"
	// clears it.
	MigrationStatus *string
}

func parseReset(arg any) (*resetRequest, error) {
	m, err := argObject("os-reset_status", arg)
	if err != nil {
		return nil, err
	}
	if err := checkAllowed("os-reset_status", m, "status", "attach_status", "migration_status"); err != nil {
		return nil, err
	}
	req := &resetRequest{}
	if req.Status, err = optString(m, "status", 255); err != nil {
		return nil, err
	}
	if req.AttachStatus, err = optString(m, "attach_status", 255); err != nil {
		return nil, err
	}
	if req.MigrationStatus, err = parseMigrationStatus(m); err != nil {
		return nil, err
	}
	if _, ok := m["migration_status"]; !ok && req.Status == nil && req.AttachStatus == nil {
		return nil, errs.E(errs.Invalid, "Must specify 'status', 'attach_status' or 'migration_status' for update.")
	}
	if req.Status != nil && !validStatuses[*req.Status] {
		return nil, errs.E(errs.Invalid, "Invalid input received: Must specify a valid status")
	}
	if a := req.AttachStatus; a != nil && *a != "attached" && *a != "detached" {
		return nil, errs.E(errs.Invalid, "Invalid input received: Must specify a valid attach status")
	}
	return req, nil
}

func (s *Service) actResetStatus(w http.ResponseWriter, r *http.Request, arg any) error {
	req, err := parseReset(arg)
	if err != nil {
		return err
	}
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_admin_actions:reset_status")
	if err != nil {
		return err
	}
	if req.Status != nil {
		v.Status = *req.Status
	}
	if req.AttachStatus != nil {
		v.AttachStatus = *req.AttachStatus
	}
	if err := resetStatus(ctx, s.deps.DB, v.ID, v.Status, v.AttachStatus); err != nil {
		return err
	}
	if req.MigrationStatus != nil {
		if err := resetMigrationStatus(ctx, s.deps.DB, v.ID, *req.MigrationStatus); err != nil {
			return err
		}
	}
	return replyEmpty(w, http.StatusAccepted)
}

// parseBoolAction reads an action argument {field: <boolean>}.
func parseBoolAction(action, field string, arg any) (bool, error) {
	m, err := argObject(action, arg)
	if err != nil {
		return false, err
	}
	raw, ok := m[field]
	if !ok {
		return false, invalidInput(action, m, "'%s' is a required property", field)
	}
	return parseBool(field, raw)
}

func (s *Service) actSetBootable(w http.ResponseWriter, r *http.Request, arg any) error {
	b, err := parseBoolAction("os-set_bootable", "bootable", arg)
	if err != nil {
		return err
	}
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_actions:set_bootable")
	if err != nil {
		return err
	}
	if err := setBootable(ctx, s.deps.DB, v.ID, b); err != nil {
		return err
	}
	return replyEmpty(w, http.StatusOK)
}

// actReadonly records the flag as the volume's "readonly" metadata, where
// Cinder's views show its admin metadata ("True"/"False").
func (s *Service) actReadonly(w http.ResponseWriter, r *http.Request, arg any) error {
	b, err := parseBoolAction("os-update_readonly_flag", "readonly", arg)
	if err != nil {
		return err
	}
	ctx := r.Context()
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		v, err := s.volumeFor(ctx, tx, r, "volume:update_readonly_flag")
		if err != nil {
			return err
		}
		if v.Status != "available" && v.Status != "in-use" {
			return errs.E(errs.Invalid, "Invalid volume: Volume %s status must be available or in-use", v.ID)
		}
		if err := setReadonly(ctx, tx, v.ID, b); err != nil {
			return err
		}
		return putKV(ctx, tx, setMetadata, v.ID, map[string]string{"readonly": pyRepr(b, false)})
	})
	if err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

func (s *Service) actForceDelete(w http.ResponseWriter, r *http.Request, _ any) error {
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_admin_actions:force_delete")
	if err != nil {
		return err
	}
	if v.Status == "uploading" {
		return errs.E(errs.Invalid, "Invalid volume: Volume %s is being uploaded.", v.ID)
	}
	if migrating(v) || v.AttachStatus == "attached" {
		return errNotDeletable(true)
	}
	if err := s.checkNotFrozen(ctx, s.deps.DB, v); err != nil {
		return err
	}
	tk, _, err := s.beginVolumeDelete(ctx, r, v, false, true)
	if err != nil {
		return err
	}
	// Work still recorded for the volume (its create) finds it gone and
	// ends; work running now deletes the data it wrote (finishCreate).
	if err := s.finishVolumeDelete(ctx, v, tk); err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}
