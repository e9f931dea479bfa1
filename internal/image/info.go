package image

import (
	"net/http"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Discovery: GET /v2/info/stores (and /detail), /import, /usage.

// storesInfo lists the visible stores in configuration order, with
// "default" and "read-only" as the string "true" and absent when false.
func (s *Service) storesInfo(w http.ResponseWriter, r *http.Request) error {
	s.writeStores(w, nil)
	return nil
}

// storesDetail adds each store's type and properties (admins only).
func (s *Service) storesDetail(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(caller(r), "stores_info_detail", nil); err != nil {
		return err
	}
	usage, err := StoreUsage(r.Context(), s.deps.DB)
	if err != nil {
		return err
	}
	s.writeStores(w, usage)
	return nil
}

// detailProperties are the properties Glance's stores detail shows per
// store type; a store's other properties (an S3 endpoint and bucket, say)
// stay internal.
var detailProperties = map[string][]string{
	"file": {"data_dir", "chunk_size", "thin_provisioning"},
	"s3":   {"s3_store_large_object_size", "s3_store_large_object_chunk_size", "s3_store_thread_pools"},
}

// writeStores renders the stores; usage non-nil is the detail view, which
// adds each store's "ashlar" object: images and bytes it holds, its
// health as last checked and, where the driver knows it, its free space.
// Glance has no such key; clients ignore keys they do not know.
func (s *Service) writeStores(w http.ResponseWriter, usage map[string]StoreUse) {
	detail := usage != nil
	out := []object{}
	for _, st := range s.stores.All() {
		o := object{{"id", st.ID}}
		if st.Description != "" {
			o = append(o, kv{"description", st.Description})
		}
		if st.Default {
			o = append(o, kv{"default", "true"})
		}
		if st.ReadOnly {
			o = append(o, kv{"read-only", "true"})
		}
		if detail {
			props := map[string]any{}
			for _, k := range detailProperties[st.Type] {
				if v, ok := st.Properties[k]; ok {
					props[k] = v
				}
			}
			o = append(o, kv{"type", st.Type}, kv{"properties", props}, kv{"ashlar", s.storeExtra(st.ID, usage[st.ID])})
		}
		out = append(out, o)
	}
	api.WriteJSON(w, http.StatusOK, m{"stores": out})
}

func (s *Service) importInfo(w http.ResponseWriter, r *http.Request) error {
	methods := s.cfg.Image.ImportMethods
	if methods == nil {
		methods = []string{}
	}
	api.WriteJSON(w, http.StatusOK, m{"import-methods": object{{"description", "Import methods available."},
		{"type", "array"}, {"value", methods}}})
	return nil
}

// usageInfo reports the caller's image usage against the configured quota.
func (s *Service) usageInfo(w http.ResponseWriter, r *http.Request) error {
	c := caller(r)
	if c == nil || !c.HasRole(auth.RoleReader) {
		return errs.E(errs.Forbidden, "You are not authorized to complete get_usage action.")
	}
	used, err := projectUsage(r.Context(), s.deps.DB, c.ProjectID)
	if err != nil {
		return err
	}
	count, err := countImages(r.Context(), s.deps.DB, c.ProjectID)
	if err != nil {
		return err
	}
	limit := s.cfg.Image.UserStorageQuota
	if limit == 0 {
		limit = -1
	}
	api.WriteJSON(w, http.StatusOK, m{"usage": m{"image_count_total": m{"limit": -1, "usage": count},
		"image_size_total": m{"limit": limit, "usage": used}}})
	return nil
}

// storeExtra is a store's "ashlar" object in stores detail.
func (s *Service) storeExtra(id string, u StoreUse) object {
	o := object{{"images", u.Images}, {"bytes", u.Bytes}}
	h, checked := s.health.get(id)
	switch {
	case !checked || h.Unknown:
		o = append(o, kv{"health", "unknown"})
	case h.Err != "":
		o = append(o, kv{"health", "unhealthy"}, kv{"health_error", h.Err})
	default:
		o = append(o, kv{"health", "healthy"})
	}
	if checked {
		o = append(o, kv{"checked_at", isoTime(db.Timestamp{Time: h.Checked})})
	}
	if h.FreeKnown {
		o = append(o, kv{"free_bytes", h.Free})
	}
	return o
}
