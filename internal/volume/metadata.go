package volume

import (
	"context"
	"maps"
	"net/http"
	"sort"
	"unicode/utf8"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// A volume has two key/value sets, its metadata (/volumes/{id}/metadata)
// and its image metadata (the os-*_image_metadata actions); a snapshot has
// its metadata (/snapshots/{id}/metadata). All are written and deleted by
// the two functions below, and the two metadata APIs are one kvResource.

// kvLoader loads the request's volume or snapshot for action in q and
// returns its id and the current content of one of its sets.
type kvLoader func(ctx context.Context, q db.Querier, r *http.Request, action string) (string, map[string]string, error)

// volumeKV loads the request's volume and its set.
func (s *Service) volumeKV(set kvSet) kvLoader {
	return kvOf(s.volumeFor, set)
}

// snapshotKV loads the request's snapshot and its set.
func (s *Service) snapshotKV(set kvSet) kvLoader {
	return kvOf(s.snapshotFor, set)
}

// kvOf is the kvLoader of set of the row forRequest loads (volumeFor,
// snapshotFor).
func kvOf[T kvHolder](forRequest func(context.Context, db.Querier, *http.Request, string) (T, error), set kvSet) kvLoader {
	return func(ctx context.Context, q db.Querier, r *http.Request, action string) (string, map[string]string, error) {
		row, err := forRequest(ctx, q, r, action)
		if err != nil {
			return "", nil, err
		}
		return row.owner(), row.kv(set), nil
	}
}

// writeKV merges md into set of the owner load finds for action (replace:
// makes md the whole set), in one transaction. It returns the set as it
// is afterwards.
func (s *Service) writeKV(r *http.Request, load kvLoader, action string, set kvSet, md map[string]string, replace bool) (map[string]string, error) {
	ctx := r.Context()
	var out map[string]string
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		id, cur, err := load(ctx, tx, r, action)
		if err != nil {
			return err
		}
		if replace {
			out = md
			return replaceKV(ctx, tx, set, id, md)
		}
		if err := putKV(ctx, tx, set, id, md); err != nil {
			return err
		}
		out = cur
		maps.Copy(out, md)
		return nil
	})
	return out, err
}

// deleteKVKey removes key from set of the owner load finds for action;
// notFound makes the error for a key the set does not have.
func (s *Service) deleteKVKey(r *http.Request, load kvLoader, action string, set kvSet, key string, notFound func(ownerID string) error) error {
	ctx := r.Context()
	return s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		id, _, err := load(ctx, tx, r, action)
		if err != nil {
			return err
		}
		found, err := deleteKV(ctx, tx, set, id, key)
		if err == nil && !found {
			err = notFound(id)
		}
		return err
	})
}

// kvResource is a metadata API: /volumes/{id}/metadata or
// /snapshots/{id}/metadata, with its owner's policies and Cinder's
// messages for it.
type kvResource struct {
	s    *Service
	load kvLoader
	set  kvSet
	// The policy actions of reading, merging (POST), replacing and
	// updating (PUT), and deleting.
	getAction, createAction, updateAction, deleteAction string
	// parse validates the value of a body's member ("metadata", "meta").
	parse func(member string, raw any) (map[string]string, error)
	// missing is the message for a body without member.
	missing func(member string) string
	// keyNotFound is the error for a key the owner's metadata lacks.
	keyNotFound func(ownerID, key string) error
}

// volumeMetadata is the API of a volume's metadata.
func (s *Service) volumeMetadata() kvResource {
	return kvResource{s: s, load: s.volumeKV(setMetadata), set: setMetadata,
		getAction: "volume:get_volume_metadata", createAction: "volume:create_volume_metadata",
		updateAction: "volume:update_volume_metadata", deleteAction: "volume:delete_volume_metadata",
		parse: parseMetadata, missing: func(string) string { return "Malformed request body" },
		keyNotFound: func(id, key string) error {
			return errs.E(errs.NotFound, "Volume %s has no metadata with key %s.", id, key)
		}}
}

// snapshotMetadata is the API of a snapshot's metadata, which Cinder
// checks with check_metadata_properties rather than a JSON schema.
func snapshotMetadata(s *Service) kvResource {
	return kvResource{s: s, load: s.snapshotKV(setSnapshotMetadata), set: setSnapshotMetadata,
		getAction: "volume:get_snapshot_metadata", createAction: "volume:update_snapshot_metadata",
		updateAction: "volume:update_snapshot_metadata", deleteAction: "volume:delete_snapshot_metadata",
		parse: parseSnapshotMetadata, missing: missingElement,
		keyNotFound: func(id, key string) error {
			return errs.E(errs.NotFound, "Snapshot %s has no metadata with key %s.", id, key)
		}}
}

// missingElement is Cinder's assert_valid_body message.
func missingElement(member string) string {
	return "Missing required element '" + member + "' in request body."
}

// parseSnapshotMetadata checks metadata as Cinder's
// check_metadata_properties: string values, keys of at least one
// character, keys and values of at most 255 (413 beyond).
func parseSnapshotMetadata(member string, raw any) (map[string]string, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, errs.E(errs.Invalid, "%s", missingElement(member))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]string, len(m))
	for _, k := range keys {
		v, ok := m[k].(string)
		switch {
		case k == "":
			return nil, errs.E(errs.Invalid, "Invalid metadata: Invalid input received: Metadata key:  has 0 characters, less than 1.")
		case !ok:
			return nil, errs.E(errs.Invalid, "Invalid metadata: Invalid input received: Value for metadata key: %s is not a string or unicode", k)
		case utf8.RuneCountInString(k) > 255:
			return nil, errs.E(errs.TooLarge, "Invalid metadata size: Metadata property key %s greater than 255 characters.", k)
		case utf8.RuneCountInString(v) > 255:
			return nil, errs.E(errs.TooLarge, "Invalid metadata size: Metadata property key %s value greater than 255 characters.", k)
		}
		out[k] = v
	}
	return out, nil
}

// decode reads a body whose member holds metadata.
func (k kvResource) decode(r *http.Request, member string) (map[string]string, error) {
	body, err := decodeObject(r)
	if err != nil {
		return nil, err
	}
	raw, ok := body[member]
	if !ok {
		return nil, errs.E(errs.Invalid, "%s", k.missing(member))
	}
	return k.parse(member, raw)
}

func (k kvResource) show(w http.ResponseWriter, r *http.Request) error {
	_, md, err := k.load(r.Context(), k.s.deps.DB, r, k.getAction)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"metadata": md})
}

// create merges the body's metadata into the owner's (POST).
func (k kvResource) create(w http.ResponseWriter, r *http.Request) error {
	return k.write(w, r, k.createAction, false)
}

// replace makes the body's metadata the owner's (PUT).
func (k kvResource) replace(w http.ResponseWriter, r *http.Request) error {
	return k.write(w, r, k.updateAction, true)
}

func (k kvResource) write(w http.ResponseWriter, r *http.Request, action string, replace bool) error {
	md, err := k.decode(r, "metadata")
	if err != nil {
		return err
	}
	out, err := k.s.writeKV(r, k.load, action, k.set, md, replace)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"metadata": out})
}

func (k kvResource) showItem(w http.ResponseWriter, r *http.Request) error {
	id, md, err := k.load(r.Context(), k.s.deps.DB, r, k.getAction)
	if err != nil {
		return err
	}
	key := r.PathValue("key")
	val, ok := md[key]
	if !ok {
		return k.keyNotFound(id, key)
	}
	return reply(w, http.StatusOK, map[string]any{"meta": map[string]string{key: val}})
}

func (k kvResource) updateItem(w http.ResponseWriter, r *http.Request) error {
	md, err := k.decode(r, "meta")
	if err != nil {
		return err
	}
	if _, ok := md[r.PathValue("key")]; !ok {
		return errs.E(errs.Invalid, "Request body and URI mismatch")
	}
	if len(md) > 1 {
		return errs.E(errs.Invalid, "Request body contains too many items")
	}
	if _, err := k.s.writeKV(r, k.load, k.updateAction, k.set, md, false); err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"meta": md})
}

func (k kvResource) deleteItem(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	err := k.s.deleteKVKey(r, k.load, k.deleteAction, k.set, key, func(id string) error { return k.keyNotFound(id, key) })
	if err != nil {
		return err
	}
	return replyEmpty(w, http.StatusOK)
}

// routes registers the API under item ("/v3/{project_id}/volumes/{volume_id}").
func (k kvResource) routes(m *api.Mux, item string) {
	m.Handle("GET "+item+"/metadata", handler(k.show))
	m.Handle("POST "+item+"/metadata", handler(k.create))
	m.Handle("PUT "+item+"/metadata", handler(k.replace))
	m.Handle("GET "+item+"/metadata/{key}", handler(k.showItem))
	m.Handle("PUT "+item+"/metadata/{key}", handler(k.updateItem))
	m.Handle("DELETE "+item+"/metadata/{key}", handler(k.deleteItem))
}

func (s *Service) actSetImageMetadata(w http.ResponseWriter, r *http.Request, arg any) error {
	m, err := argObject("os-set_image_metadata", arg)
	if err != nil {
		return err
	}
	raw, ok := m["metadata"]
	if !ok {
		return errs.E(errs.Invalid, "Malformed request body.")
	}
	md, err := parseMetadata("metadata", raw)
	if err != nil {
		return err
	}
	out, err := s.writeKV(r, s.volumeKV(setImageMetadata), "volume_extension:volume_image_metadata:set", setImageMetadata, md, false)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"metadata": out})
}

func (s *Service) actUnsetImageMetadata(w http.ResponseWriter, r *http.Request, arg any) error {
	m, err := argObject("os-unset_image_metadata", arg)
	if err != nil {
		return err
	}
	key, ok := m["key"].(string)
	if !ok {
		return errs.E(errs.Invalid, "Malformed request body.")
	}
	err = s.deleteKVKey(r, s.volumeKV(setImageMetadata), "volume_extension:volume_image_metadata:remove", setImageMetadata, key,
		func(volumeID string) error {
			return errs.E(errs.NotFound, "Glance metadata for volume %s with key %s could not be found.", volumeID, key)
		})
	if err != nil {
		return err
	}
	return replyEmpty(w, http.StatusOK)
}

func (s *Service) actShowImageMetadata(w http.ResponseWriter, r *http.Request, _ any) error {
	v, err := s.volumeFor(r.Context(), s.deps.DB, r, "volume_extension:volume_image_metadata:show")
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"metadata": v.ImageMetadata})
}
