package volume

import (
	"context"
	"net/http"
	"sort"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// volumeAction dispatches POST /volumes/{id}/action on the body's one key.
func (s *Service) volumeAction(w http.ResponseWriter, r *http.Request) {
	body, err := decodeObject(r)
	if err != nil {
		fail(w, r, err)
		return
	}
	keys := make([]string, 0, len(body))
	for k := range body {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	handlers := map[string]func(http.ResponseWriter, *http.Request, any){
		"os-extend":               s.actExtend,
		"os-reset_status":         s.actResetStatus,
		"os-set_bootable":         s.actSetBootable,
		"os-update_readonly_flag": s.actReadonly,
		"os-reserve":              s.actReserve,
		"os-unreserve":            s.actUnreserve,
		"os-set_image_metadata":   s.actSetImageMetadata,
		"os-unset_image_metadata": s.actUnsetImageMetadata,
		"os-show_image_metadata":  s.actShowImageMetadata,
		"os-retype":               s.actRetype,
		"os-force_delete":         s.actForceDelete,
		"os-volume_upload_image":  s.actUploadImage,
		"os-attach":               s.actAttach,
		"os-detach":               s.actDetach,
		"os-begin_detaching":      s.actDetach,
		"os-roll_detaching":       s.actDetach,
	}
	for _, k := range keys {
		if h, ok := handlers[k]; ok {
			h(w, r, body[k])
			return
		}
	}
	name := ""
	if len(keys) > 0 {
		name = keys[0]
	}
	fail(w, r, errs.E(errs.Invalid, "There is no such action: %s", name))
}

func argObject(action string, v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalidInput(action, v, "%s is not of type 'object'", pyRepr(v, true))
	}
	return m, nil
}

func (s *Service) actExtend(w http.ResponseWriter, r *http.Request, arg any) {
	ctx := r.Context()
	m, err := argObject("os-extend", arg)
	if err != nil {
		fail(w, r, err)
		return
	}
	raw, ok := m["new_size"]
	if !ok {
		fail(w, r, invalidInput("os-extend", m, "'new_size' is a required property"))
		return
	}
	if raw == nil {
		fail(w, r, invalidInput("new_size", raw, "None is not of type 'integer', 'string'"))
		return
	}
	newSize, err := parseSize(raw)
	if err != nil {
		fail(w, r, err)
		return
	}
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume:extend")
	if err != nil {
		fail(w, r, err)
		return
	}
	if v.Status != "available" {
		fail(w, r, errs.E(errs.Invalid, "Invalid volume: Volume %s status must be available, but current status is: %s.", v.ID, v.Status))
		return
	}
	if newSize <= v.Size {
		fail(w, r, errs.E(errs.Invalid, "Invalid input received: New size for extend must be greater than current size. (current: %d, extended: %d).", v.Size, newSize))
		return
	}
	if err := setStatus(ctx, s.deps.DB, v.ID, "extending", "available"); err != nil {
		fail(w, r, err)
		return
	}
	b := (*backend)(nil)
	if v.Host != nil {
		b = s.backendNamed(*v.Host)
	}
	bg := context.WithoutCancel(ctx)
	if b == nil {
		_ = forceStatus(bg, s.deps.DB, v.ID, "error_extending")
		fail(w, r, errs.E(errs.Unavailable, "The volume's backend is not available."))
		return
	}
	if err := b.drv.Extend(bg, v.ID, newSize*gib); err != nil {
		_ = forceStatus(bg, s.deps.DB, v.ID, "error_extending")
		s.recordMessage(bg, v.ProjectID, v.ID, api.RequestID(ctx), "VOLUME_VOLUME_007_001", "extend volume:Compute service failed to extend volume.")
		fail(w, r, err)
		return
	}
	if _, err := s.deps.DB.ExecContext(bg, `UPDATE volumes SET size = ?, status = 'available', updated_at = ? WHERE id = ?`, newSize, db.Now(), v.ID); err != nil {
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

var validStatuses = map[string]bool{"available": true, "creating": true, "deleting": true, "error": true,
	"error_deleting": true, "error_managing": true, "managing": true, "attaching": true, "in-use": true,
	"detaching": true, "maintenance": true, "reserved": true, "error_restoring": true, "error_extending": true,
	"extending": true, "uploading": true, "downloading": true, "retyping": true, "backing-up": true, "restoring-backup": true}

func (s *Service) actResetStatus(w http.ResponseWriter, r *http.Request, arg any) {
	ctx := r.Context()
	m, err := argObject("os-reset_status", arg)
	if err != nil {
		fail(w, r, err)
		return
	}
	if err := checkAllowed("os-reset_status", m, "status", "attach_status", "migration_status"); err != nil {
		fail(w, r, err)
		return
	}
	status, err := optString(m, "status", 255)
	if err != nil {
		fail(w, r, err)
		return
	}
	attach, err := optString(m, "attach_status", 255)
	if err != nil {
		fail(w, r, err)
		return
	}
	if status == nil && attach == nil {
		if _, ok := m["migration_status"]; !ok {
			fail(w, r, errs.E(errs.Invalid, "Must specify 'status', 'attach_status' or 'migration_status' for update."))
			return
		}
	}
	if status != nil && !validStatuses[*status] {
		fail(w, r, errs.E(errs.Invalid, "Invalid input received: Must specify a valid status"))
		return
	}
	if attach != nil && *attach != "attached" && *attach != "detached" {
		fail(w, r, errs.E(errs.Invalid, "Invalid input received: Must specify a valid attach status"))
		return
	}
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_admin_actions:reset_status")
	if err != nil {
		fail(w, r, err)
		return
	}
	if status != nil {
		v.Status = *status
	}
	if attach != nil {
		v.AttachStatus = *attach
	}
	if _, err := s.deps.DB.ExecContext(ctx, `UPDATE volumes SET status = ?, attach_status = ?, updated_at = ? WHERE id = ?`, v.Status, v.AttachStatus, db.Now(), v.ID); err != nil {
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Service) boolAction(r *http.Request, action, field string, arg any) (bool, error) {
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

func (s *Service) actSetBootable(w http.ResponseWriter, r *http.Request, arg any) {
	ctx := r.Context()
	b, err := s.boolAction(r, "os-set_bootable", "bootable", arg)
	if err != nil {
		fail(w, r, err)
		return
	}
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_actions:set_bootable")
	if err != nil {
		fail(w, r, err)
		return
	}
	if _, err := s.deps.DB.ExecContext(ctx, `UPDATE volumes SET bootable = ?, updated_at = ? WHERE id = ?`, b, db.Now(), v.ID); err != nil {
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// actReadonly records the flag as the volume's "readonly" metadata, where
// Cinder's views show its admin metadata ("True"/"False").
func (s *Service) actReadonly(w http.ResponseWriter, r *http.Request, arg any) {
	ctx := r.Context()
	b, err := s.boolAction(r, "os-update_readonly_flag", "readonly", arg)
	if err != nil {
		fail(w, r, err)
		return
	}
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		v, err := s.volumeFor(ctx, tx, r, "volume:update_readonly_flag")
		if err != nil {
			return err
		}
		if v.Status != "available" && v.Status != "in-use" {
			return errs.E(errs.Invalid, "Invalid volume: Volume %s status must be available or in-use", v.ID)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE volumes SET readonly = ?, updated_at = ? WHERE id = ?`, b, db.Now(), v.ID); err != nil {
			return err
		}
		return putKV(ctx, tx, "volume_metadata", v.ID, map[string]string{"readonly": pyRepr(b, false)})
	})
	if err != nil {
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Service) actReserve(w http.ResponseWriter, r *http.Request, _ any) {
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_actions:reserve")
	if err != nil {
		fail(w, r, err)
		return
	}
	if err := setStatus(ctx, s.deps.DB, v.ID, "attaching", "available"); err != nil {
		cur, _ := getVolume(ctx, s.deps.DB, v.ID)
		st := v.Status
		if cur != nil {
			st = cur.Status
		}
		fail(w, r, errs.E(errs.Invalid, "Invalid volume: Volume status must be available to reserve, but the status is %s.", st))
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Service) actUnreserve(w http.ResponseWriter, r *http.Request, _ any) {
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_actions:unreserve")
	if err != nil {
		fail(w, r, err)
		return
	}
	_ = setStatus(ctx, s.deps.DB, v.ID, "available", "attaching")
	w.WriteHeader(http.StatusAccepted)
}

func (s *Service) actSetImageMetadata(w http.ResponseWriter, r *http.Request, arg any) {
	ctx := r.Context()
	m, err := argObject("os-set_image_metadata", arg)
	if err != nil {
		fail(w, r, err)
		return
	}
	raw, ok := m["metadata"]
	if !ok {
		fail(w, r, errs.E(errs.Invalid, "Malformed request body."))
		return
	}
	md, err := parseMetadata("metadata", raw)
	if err != nil {
		fail(w, r, err)
		return
	}
	var out map[string]string
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		v, err := s.volumeFor(ctx, tx, r, "volume_extension:volume_image_metadata:set")
		if err != nil {
			return err
		}
		if err := putKV(ctx, tx, "volume_image_metadata", v.ID, md); err != nil {
			return err
		}
		for k, val := range md {
			v.ImageMetadata[k] = val
		}
		out = v.ImageMetadata
		return nil
	})
	if err != nil {
		fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"metadata": out})
}

func (s *Service) actUnsetImageMetadata(w http.ResponseWriter, r *http.Request, arg any) {
	ctx := r.Context()
	m, err := argObject("os-unset_image_metadata", arg)
	if err != nil {
		fail(w, r, err)
		return
	}
	key, ok := m["key"].(string)
	if !ok {
		fail(w, r, errs.E(errs.Invalid, "Malformed request body."))
		return
	}
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		v, err := s.volumeFor(ctx, tx, r, "volume_extension:volume_image_metadata:remove")
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM volume_image_metadata WHERE volume_id = ? AND key = ?`, v.ID, key)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.E(errs.NotFound, "Glance metadata for volume %s with key %s could not be found.", v.ID, key)
		}
		return nil
	})
	if err != nil {
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Service) actShowImageMetadata(w http.ResponseWriter, r *http.Request, _ any) {
	v, err := s.volumeFor(r.Context(), s.deps.DB, r, "volume_extension:volume_image_metadata:show")
	if err != nil {
		fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"metadata": v.ImageMetadata})
}

// actRetype changes the type in place when the volume's backend satisfies
// the new type; Ashlar does not migrate between backends.
func (s *Service) actRetype(w http.ResponseWriter, r *http.Request, arg any) {
	ctx := r.Context()
	m, err := argObject("os-retype", arg)
	if err != nil {
		fail(w, r, err)
		return
	}
	name, ok := m["new_type"].(string)
	if !ok || name == "" {
		fail(w, r, invalidInput("os-retype", m, "'new_type' is a required property"))
		return
	}
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume:retype")
	if err != nil {
		fail(w, r, err)
		return
	}
	t, err := s.getType(ctx, s.deps.DB, r, name, true)
	if err != nil {
		fail(w, r, errs.E(errs.NotFound, "Volume type with name %s could not be found.", name))
		return
	}
	if v.Status != "available" && v.Status != "in-use" {
		fail(w, r, errs.E(errs.Invalid, "Invalid volume: Volume %s status must be available or in-use", v.ID))
		return
	}
	if v.TypeID != nil && *v.TypeID == t.ID {
		fail(w, r, errs.E(errs.Invalid, "Invalid input received: Retype requested to same volume type."))
		return
	}
	if v.Host != nil {
		if b := s.backendNamed(*v.Host); b != nil {
			caps, _, err := b.capabilities(ctx)
			if err != nil || !satisfies(caps, t.ExtraSpecs) {
				s.recordMessage(ctx, v.ProjectID, v.ID, api.RequestID(ctx), "VOLUME_VOLUME_004_003", "retype volume:No valid host was found.")
				fail(w, r, errs.E(errs.Invalid, "Invalid volume: the volume's backend does not satisfy type %s and volumes are not migrated.", t.Name))
				return
			}
		}
	}
	if _, err := s.deps.DB.ExecContext(ctx, `UPDATE volumes SET type_id = ?, updated_at = ? WHERE id = ?`, t.ID, db.Now(), v.ID); err != nil {
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Service) actForceDelete(w http.ResponseWriter, r *http.Request, _ any) {
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_admin_actions:force_delete")
	if err != nil {
		fail(w, r, err)
		return
	}
	if v.Status == "uploading" {
		fail(w, r, errs.E(errs.Invalid, "Invalid volume: Volume %s is being uploaded.", v.ID))
		return
	}
	if _, err := s.deps.DB.ExecContext(ctx, `DELETE FROM volume_work WHERE volume_id = ?`, v.ID); err != nil {
		fail(w, r, err)
		return
	}
	if err := s.destroyVolume(ctx, v); err != nil {
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// actAttach: attaching needs a compute service, which Ashlar does not
// drive; the volume is still looked up first so unknown ids are 404.
func (s *Service) actAttach(w http.ResponseWriter, r *http.Request, _ any) {
	v, err := s.volumeFor(r.Context(), s.deps.DB, r, "volume:update")
	if err != nil {
		fail(w, r, err)
		return
	}
	fail(w, r, errs.E(errs.Invalid, "Invalid volume: Volume %s cannot be attached: no compute service attaches volumes here.", v.ID))
}

// actDetach: no volume is ever attached, so detaching is refused after
// the lookup (unknown ids are 404, as tempest expects).
func (s *Service) actDetach(w http.ResponseWriter, r *http.Request, _ any) {
	if _, err := s.volumeFor(r.Context(), s.deps.DB, r, "volume:update"); err != nil {
		fail(w, r, err)
		return
	}
	fail(w, r, errs.E(errs.Invalid, "Invalid volume: Volume must be attached in order to detach."))
}
