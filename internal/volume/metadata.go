package volume

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

func (s *Service) showMetadata(w http.ResponseWriter, r *http.Request) {
	v, err := s.volumeFor(r.Context(), s.deps.DB, r, "volume:get_volume_metadata")
	if err != nil {
		fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"metadata": v.Metadata})
}

// writeMetadata merges (or replaces) the body's metadata into the volume's.
func (s *Service) writeMetadata(w http.ResponseWriter, r *http.Request, replace bool) {
	ctx := r.Context()
	body, err := decodeObject(r)
	if err != nil {
		fail(w, r, err)
		return
	}
	raw, ok := body["metadata"]
	if !ok {
		fail(w, r, errs.E(errs.Invalid, "Malformed request body"))
		return
	}
	md, err := parseMetadata("metadata", raw)
	if err != nil {
		fail(w, r, err)
		return
	}
	var out map[string]string
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		action := "volume:create_volume_metadata"
		if replace {
			action = "volume:update_volume_metadata"
		}
		v, err := s.volumeFor(ctx, tx, r, action)
		if err != nil {
			return err
		}
		if replace {
			if err := replaceKV(ctx, tx, v.ID, md); err != nil {
				return err
			}
			out = md
		} else {
			if err := putKV(ctx, tx, "volume_metadata", v.ID, md); err != nil {
				return err
			}
			for k, val := range md {
				v.Metadata[k] = val
			}
			out = v.Metadata
		}
		return nil
	})
	if err != nil {
		fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"metadata": out})
}

func (s *Service) createMetadata(w http.ResponseWriter, r *http.Request) {
	s.writeMetadata(w, r, false)
}
func (s *Service) replaceMetadata(w http.ResponseWriter, r *http.Request) {
	s.writeMetadata(w, r, true)
}

func (s *Service) showMetadataItem(w http.ResponseWriter, r *http.Request) {
	v, err := s.volumeFor(r.Context(), s.deps.DB, r, "volume:get_volume_metadata")
	if err != nil {
		fail(w, r, err)
		return
	}
	key := r.PathValue("key")
	val, ok := v.Metadata[key]
	if !ok {
		fail(w, r, errs.E(errs.NotFound, "Volume %s has no metadata with key %s.", v.ID, key))
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"meta": map[string]string{key: val}})
}

func (s *Service) updateMetadataItem(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	body, err := decodeObject(r)
	if err != nil {
		fail(w, r, err)
		return
	}
	raw, ok := body["meta"]
	if !ok {
		fail(w, r, errs.E(errs.Invalid, "Malformed request body"))
		return
	}
	md, err := parseMetadata("meta", raw)
	if err != nil {
		fail(w, r, err)
		return
	}
	key := r.PathValue("key")
	if _, ok := md[key]; !ok {
		fail(w, r, errs.E(errs.Invalid, "Request body and URI mismatch"))
		return
	}
	if len(md) > 1 {
		fail(w, r, errs.E(errs.Invalid, "Request body contains too many items"))
		return
	}
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		v, err := s.volumeFor(ctx, tx, r, "volume:update_volume_metadata")
		if err != nil {
			return err
		}
		return putKV(ctx, tx, "volume_metadata", v.ID, md)
	})
	if err != nil {
		fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"meta": md})
}

func (s *Service) deleteMetadataItem(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		v, err := s.volumeFor(ctx, tx, r, "volume:delete_volume_metadata")
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM volume_metadata WHERE volume_id = ? AND key = ?`, v.ID, r.PathValue("key"))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.E(errs.NotFound, "Volume %s has no metadata with key %s.", v.ID, r.PathValue("key"))
		}
		return nil
	})
	if err != nil {
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Service) listAZs(w http.ResponseWriter, r *http.Request) {
	if err := enforce(r, "volume_extension:availability_zone_list", ""); err != nil {
		fail(w, r, err)
		return
	}
	seen := map[string]bool{}
	out := []any{}
	add := func(az string) {
		if !seen[az] {
			seen[az] = true
			out = append(out, map[string]any{"zoneName": az, "zoneState": map[string]bool{"available": true}})
		}
	}
	for _, b := range s.backends {
		add(b.az)
	}
	if len(out) == 0 {
		add(s.deps.Config.Volume.DefaultAvailabilityZone)
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"availabilityZoneInfo": out})
}

func (s *Service) listExtensions(w http.ResponseWriter, r *http.Request) {
	ext := func(alias, name, desc string) map[string]any {
		return map[string]any{"alias": alias, "name": name, "description": desc, "links": []any{},
			"updated": "2013-02-19T00:00:00+00:00"}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"extensions": []any{
		ext("os-types-manage", "TypesManage", "Types manage support."),
		ext("os-types-extra-specs", "TypesExtraSpecs", "Type extra specs support."),
		ext("os-volume-type-access", "VolumeTypeAccess", "Volume type access support."),
		ext("os-volume-actions", "VolumeActions", "Enable volume actions."),
		ext("os-availability-zone", "AvailabilityZones", "Describe Availability Zones."),
		ext("os-vol-image-meta", "VolumeImageMetadata", "Show image metadata associated with the volume."),
	}})
}

// Message event ids, after Cinder's message_field.
const (
	eventScheduleAllocate = "VOLUME_VOLUME_001_003"
	eventCreateFromImage  = "VOLUME_VOLUME_002_001"
	eventUploadImage      = "VOLUME_VOLUME_003_004"
	eventUploadQuota      = "VOLUME_VOLUME_003_006"
)

// messageTTL is how long a user message is kept (Cinder: 30 days).
const messageTTL = 30 * 24 * time.Hour

// recordMessage stores a user message about a volume's failed async work.
func (s *Service) recordMessage(ctx context.Context, project, volumeID, requestID, event, text string) {
	now := db.Now()
	_, err := s.deps.DB.ExecContext(ctx, `INSERT INTO volume_messages (id, project_id, request_id, resource_type,
		resource_uuid, event_id, message_level, user_message, created_at, guaranteed_until)
		VALUES (?, ?, ?, 'VOLUME', ?, ?, 'ERROR', ?, ?, ?)`, uuid.NewString(), project, requestID, volumeID, event, text,
		now, db.Timestamp{Time: now.Time.Add(messageTTL)})
	if err != nil {
		s.deps.Logger.Error("recording user message", "volume", volumeID, "err", err)
	}
}

const msgCols = `id, project_id, request_id, resource_type, resource_uuid, event_id, message_level, user_message, created_at, guaranteed_until`

func (s *Service) messageView(r *http.Request, sc interface{ Scan(...any) error }) (map[string]any, string, error) {
	var id, project, rtype, event, level, text string
	var reqID, ruuid *string
	var created, until db.Timestamp
	if err := sc.Scan(&id, &project, &reqID, &rtype, &ruuid, &event, &level, &text, &created, &until); err != nil {
		return nil, "", err
	}
	m := map[string]any{"id": id, "request_id": deref(reqID), "resource_type": rtype, "event_id": event,
		"message_level": level, "user_message": text, "created_at": fmtTime(created), "guaranteed_until": fmtTime(until),
		"links": []map[string]string{{"rel": "self", "href": s.linkBase(r) + "/messages/" + id}}}
	if ruuid != nil {
		m["resource_uuid"] = *ruuid
	}
	return m, project, nil
}

func (s *Service) listMessages(w http.ResponseWriter, r *http.Request) {
	if versionOf(r) < 3 {
		fail(w, r, errs.E(errs.NotFound, "The resource could not be found."))
		return
	}
	if err := enforce(r, "message:get_all", ""); err != nil {
		fail(w, r, err)
		return
	}
	q := `SELECT ` + msgCols + ` FROM volume_messages WHERE project_id = ? AND guaranteed_until > ?`
	args := []any{caller(r).ProjectID, db.Now()}
	for _, f := range []string{"resource_uuid", "resource_type", "event_id", "request_id", "message_level"} {
		if v := r.URL.Query().Get(f); v != "" {
			q += ` AND ` + f + ` = ?`
			args = append(args, v)
		}
	}
	rows, err := s.deps.DB.QueryContext(r.Context(), q+` ORDER BY created_at DESC, id DESC LIMIT 1000`, args...)
	if err != nil {
		fail(w, r, err)
		return
	}
	defer rows.Close()
	out := []any{}
	for rows.Next() {
		m, _, err := s.messageView(r, rows)
		if err != nil {
			fail(w, r, err)
			return
		}
		out = append(out, m)
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"messages": out})
}

func (s *Service) getMessage(r *http.Request, action string) (map[string]any, error) {
	if versionOf(r) < 3 {
		return nil, errs.E(errs.NotFound, "The resource could not be found.")
	}
	id := r.PathValue("message_id")
	m, project, err := s.messageView(r, s.deps.DB.QueryRowContext(r.Context(), `SELECT `+msgCols+` FROM volume_messages WHERE id = ?`, id))
	if db.IsNoRows(err) || err == nil && project != caller(r).ProjectID && !caller(r).IsAdmin() {
		return nil, errs.E(errs.NotFound, "Message %s could not be found.", id)
	}
	if err != nil {
		return nil, err
	}
	return m, enforce(r, action, project)
}

func (s *Service) showMessage(w http.ResponseWriter, r *http.Request) {
	m, err := s.getMessage(r, "message:get")
	if err != nil {
		fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"message": m})
}

func (s *Service) deleteMessage(w http.ResponseWriter, r *http.Request) {
	m, err := s.getMessage(r, "message:delete")
	if err != nil {
		fail(w, r, err)
		return
	}
	if _, err := s.deps.DB.ExecContext(r.Context(), `DELETE FROM volume_messages WHERE id = ?`, m["id"]); err != nil {
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
