package volume

import (
	"maps"
	"net/http"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// A volume has two key/value sets: its metadata (/volumes/{id}/metadata)
// and its image metadata (the os-*_image_metadata actions). Both are
// written and deleted by the same two functions below.

// writeKV merges md into the volume's set (replace: makes md the whole
// set), after loading the volume for action, in one transaction. It
// returns the set as it is afterwards.
func (s *Service) writeKV(r *http.Request, action string, set kvSet, md map[string]string, replace bool) (map[string]string, error) {
	ctx := r.Context()
	var out map[string]string
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		v, err := s.volumeFor(ctx, tx, r, action)
		if err != nil {
			return err
		}
		if replace {
			out = md
			return replaceKV(ctx, tx, set, v.ID, md)
		}
		if err := putKV(ctx, tx, set, v.ID, md); err != nil {
			return err
		}
		out = v.kv(set)
		maps.Copy(out, md)
		return nil
	})
	return out, err
}

// deleteKVKey removes key from the volume's set after loading the volume
// for action; notFound makes the error for a key the set does not have.
func (s *Service) deleteKVKey(r *http.Request, action string, set kvSet, key string, notFound func(volumeID string) error) error {
	ctx := r.Context()
	return s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		v, err := s.volumeFor(ctx, tx, r, action)
		if err != nil {
			return err
		}
		found, err := deleteKV(ctx, tx, set, v.ID, key)
		if err == nil && !found {
			err = notFound(v.ID)
		}
		return err
	})
}

// decodeMetadata reads a body whose member holds metadata; without the
// member it is missing (Cinder's "Malformed request body").
func decodeMetadata(r *http.Request, member, missing string) (map[string]string, error) {
	body, err := decodeObject(r)
	if err != nil {
		return nil, err
	}
	return metadataMember(body, member, missing)
}

// metadataMember validates m[member] as metadata.
func metadataMember(m map[string]any, member, missing string) (map[string]string, error) {
	raw, ok := m[member]
	if !ok {
		return nil, errs.E(errs.Invalid, "%s", missing)
	}
	return parseMetadata(member, raw)
}

func metadataKeyNotFound(key string) func(volumeID string) error {
	return func(volumeID string) error {
		return errs.E(errs.NotFound, "Volume %s has no metadata with key %s.", volumeID, key)
	}
}

func (s *Service) showMetadata(w http.ResponseWriter, r *http.Request) error {
	v, err := s.volumeFor(r.Context(), s.deps.DB, r, "volume:get_volume_metadata")
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"metadata": v.Metadata})
}

func (s *Service) createMetadata(w http.ResponseWriter, r *http.Request) error {
	return s.writeMetadata(w, r, "volume:create_volume_metadata", false)
}

func (s *Service) replaceMetadata(w http.ResponseWriter, r *http.Request) error {
	return s.writeMetadata(w, r, "volume:update_volume_metadata", true)
}

// writeMetadata serves the merge (POST) and the replacement (PUT) of a
// volume's metadata.
func (s *Service) writeMetadata(w http.ResponseWriter, r *http.Request, action string, replace bool) error {
	md, err := decodeMetadata(r, "metadata", "Malformed request body")
	if err != nil {
		return err
	}
	out, err := s.writeKV(r, action, setMetadata, md, replace)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"metadata": out})
}

func (s *Service) showMetadataItem(w http.ResponseWriter, r *http.Request) error {
	v, err := s.volumeFor(r.Context(), s.deps.DB, r, "volume:get_volume_metadata")
	if err != nil {
		return err
	}
	key := r.PathValue("key")
	val, ok := v.Metadata[key]
	if !ok {
		return metadataKeyNotFound(key)(v.ID)
	}
	return reply(w, http.StatusOK, map[string]any{"meta": map[string]string{key: val}})
}

func (s *Service) updateMetadataItem(w http.ResponseWriter, r *http.Request) error {
	md, err := decodeMetadata(r, "meta", "Malformed request body")
	if err != nil {
		return err
	}
	if _, ok := md[r.PathValue("key")]; !ok {
		return errs.E(errs.Invalid, "Request body and URI mismatch")
	}
	if len(md) > 1 {
		return errs.E(errs.Invalid, "Request body contains too many items")
	}
	if _, err := s.writeKV(r, "volume:update_volume_metadata", setMetadata, md, false); err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"meta": md})
}

func (s *Service) deleteMetadataItem(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	if err := s.deleteKVKey(r, "volume:delete_volume_metadata", setMetadata, key, metadataKeyNotFound(key)); err != nil {
		return err
	}
	return replyEmpty(w, http.StatusOK)
}

func (s *Service) actSetImageMetadata(w http.ResponseWriter, r *http.Request, arg any) error {
	m, err := argObject("os-set_image_metadata", arg)
	if err != nil {
		return err
	}
	md, err := metadataMember(m, "metadata", "Malformed request body.")
	if err != nil {
		return err
	}
	out, err := s.writeKV(r, "volume_extension:volume_image_metadata:set", setImageMetadata, md, false)
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
	err = s.deleteKVKey(r, "volume_extension:volume_image_metadata:remove", setImageMetadata, key, func(volumeID string) error {
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
