package volume

import (
	"context"
	"net/http"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/glanceclient"
)

// glanceFor returns the image client for the request: [volume]
// glance_api_servers when set, else the caller's catalog entry "image".
func (s *Service) glanceFor(r *http.Request) (glanceclient.Client, error) {
	return s.glanceForCaller(caller(r).EndpointURL("image", "public"))
}

func (s *Service) glanceForCaller(catalogURL string) (glanceclient.Client, error) {
	endpoint := catalogURL
	if servers := s.deps.Config.Volume.GlanceAPIServers; len(servers) > 0 {
		endpoint = servers[0]
	}
	if endpoint == "" {
		return nil, errs.E(errs.Unavailable, "No image service endpoint: set [volume] glance_api_servers or add an image endpoint to the catalog.")
	}
	if s.glance == nil {
		return nil, errs.E(errs.Unavailable, "No image service client is available.")
	}
	return s.glance(endpoint), nil
}

// validateStore checks a store id against the image service's stores, as
// Cinder's validate_stores_id does: unknown -> 404, read-only -> 400.
func (s *Service) validateStore(r *http.Request, id string) error {
	gc, err := s.glanceFor(r)
	if err != nil {
		return err
	}
	return checkStore(r.Context(), gc, caller(r).Token, id)
}

func checkStore(ctx context.Context, gc glanceclient.Client, token, id string) error {
	stores, err := gc.Stores(ctx, token)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return errs.E(errs.NotFound, "Resource could not be found.")
		}
		if errs.KindOf(err) == errs.Other {
			return errs.Wrap(errs.Unavailable, err, "The image service is unavailable.")
		}
		return err
	}
	for _, st := range stores {
		if st.ID == id {
			if st.ReadOnly {
				return errs.E(errs.Invalid, "Store %s is read-only in glance.", id)
			}
			return nil
		}
	}
	return errs.E(errs.NotFound, "Store %s not enabled in glance.", id)
}

// typeForSpecs loads the type for an extra-spec call: the type must exist
// (404) and, for writes, no volume may use it (400).
func (s *Service) typeForSpecs(ctx context.Context, q db.Querier, r *http.Request, write bool) (*volType, error) {
	if write {
		var id string
		err := q.QueryRowContext(ctx, `SELECT id FROM volume_types WHERE id = ?`, r.PathValue("type_id")).Scan(&id)
		if err == nil {
			if err := typeInUse(ctx, q, id); err != nil {
				return nil, err
			}
		}
	}
	t, err := s.getType(ctx, q, r, r.PathValue("type_id"), false)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return nil, errs.E(errs.NotFound, "Volume type %s could not be found.", r.PathValue("type_id"))
		}
		return nil, err
	}
	return t, nil
}

func (s *Service) visibleSpecs(r *http.Request, specs map[string]string) map[string]string {
	sensitive := allowed(r, "volume_extension:types_extra_specs:read_sensitive", "")
	out := map[string]string{}
	for k, v := range specs {
		if sensitive || userVisibleSpecs[k] {
			out[k] = v
		}
	}
	return out
}

func (s *Service) listExtraSpecs(w http.ResponseWriter, r *http.Request) {
	if err := enforce(r, "volume_extension:types_extra_specs:index", ""); err != nil {
		fail(w, r, err)
		return
	}
	t, err := s.typeForSpecs(r.Context(), s.deps.DB, r, false)
	if err != nil {
		fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"extra_specs": s.visibleSpecs(r, t.ExtraSpecs)})
}

func (s *Service) showExtraSpec(w http.ResponseWriter, r *http.Request) {
	if err := enforce(r, "volume_extension:types_extra_specs:show", ""); err != nil {
		fail(w, r, err)
		return
	}
	t, err := s.typeForSpecs(r.Context(), s.deps.DB, r, false)
	if err != nil {
		fail(w, r, err)
		return
	}
	key := r.PathValue("key")
	v, ok := s.visibleSpecs(r, t.ExtraSpecs)[key]
	if !ok {
		fail(w, r, errs.E(errs.NotFound, "Volume Type %s has no extra specs with key %s.", t.ID, key))
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]string{key: v})
}

func (s *Service) createExtraSpecs(w http.ResponseWriter, r *http.Request) {
	body, err := decodeObject(r)
	if err != nil {
		fail(w, r, err)
		return
	}
	raw, ok := body["extra_specs"]
	if !ok {
		fail(w, r, invalidInput("extra_specs", body, "'extra_specs' is a required property"))
		return
	}
	specs, err := parseSpecs(raw)
	if err != nil {
		fail(w, r, err)
		return
	}
	if err := enforce(r, "volume_extension:types_extra_specs:create", ""); err != nil {
		fail(w, r, err)
		return
	}
	if err := s.writeSpecs(r, specs); err != nil {
		fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"extra_specs": raw})
}

func (s *Service) updateExtraSpec(w http.ResponseWriter, r *http.Request) {
	body, err := decodeObject(r)
	if err != nil {
		fail(w, r, err)
		return
	}
	if len(body) > 1 {
		fail(w, r, invalidInput("body", body, "%s has too many properties", pyRepr(body, true)))
		return
	}
	if len(body) == 0 {
		fail(w, r, invalidInput("body", body, "{} does not have enough properties"))
		return
	}
	specs, err := parseSpecs(body)
	if err != nil {
		fail(w, r, err)
		return
	}
	if err := enforce(r, "volume_extension:types_extra_specs:update", ""); err != nil {
		fail(w, r, err)
		return
	}
	if _, ok := body[r.PathValue("key")]; !ok {
		fail(w, r, errs.E(errs.Invalid, "Request body and URI mismatch"))
		return
	}
	if err := s.writeSpecs(r, specs); err != nil {
		fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, body)
}

// writeSpecs merges specs into the type, validating the store spec
// against the image service first.
func (s *Service) writeSpecs(r *http.Request, specs map[string]*string) error {
	ctx := r.Context()
	if _, err := s.typeForSpecs(ctx, s.deps.DB, r, true); err != nil {
		return err
	}
	if v, ok := specs[StoreSpec]; ok && v != nil {
		if err := s.validateStore(r, *v); err != nil {
			return err
		}
	}
	return s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		t, err := s.typeForSpecs(ctx, tx, r, true)
		if err != nil {
			return err
		}
		return putSpecs(ctx, tx, t.ID, specs, nil)
	})
}

func (s *Service) deleteExtraSpec(w http.ResponseWriter, r *http.Request) {
	if err := enforce(r, "volume_extension:types_extra_specs:delete", ""); err != nil {
		fail(w, r, err)
		return
	}
	ctx := r.Context()
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		t, err := s.typeForSpecs(ctx, tx, r, true)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM volume_type_extra_specs WHERE type_id = ? AND key = ?`, t.ID, r.PathValue("key"))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.E(errs.NotFound, "Volume Type %s has no extra specs with key %s.", t.ID, r.PathValue("key"))
		}
		return nil
	})
	if err != nil {
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
