package volume

import (
	"context"
	"net/http"
	"regexp"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// specKeyRE is Cinder's extra spec key pattern.
var specKeyRE = regexp.MustCompile(`^[a-zA-Z0-9\-_:. /]{1,255}$`)

// parseSpecs validates an extra_specs object (keys and string/null values).
func parseSpecs(v any) (map[string]*string, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalidInput("extra_specs", v, "%s is not of type 'object'", pyRepr(v, true))
	}
	out := map[string]*string{}
	for k, val := range m {
		if !specKeyRE.MatchString(k) {
			return nil, invalidInput("extra_specs", m, "'%s' does not match any of the regexes: '^[a-zA-Z0-9-_:. /]{1,255}$'", k)
		}
		switch x := val.(type) {
		case nil:
			out[k] = nil
		case string:
			if len([]rune(x)) > 255 {
				return nil, invalidInput(k, x, "'%s' is too long", x)
			}
			out[k] = &x
		default:
			return nil, invalidInput(k, val, "%s is not of type 'string', 'null'", pyRepr(val, true))
		}
	}
	return out, nil
}

// typeForSpecs loads the type for an extra-spec call: the type must exist
// (404) and, for writes, no volume may use it (400).
func (s *Service) typeForSpecs(ctx context.Context, q db.Querier, r *http.Request, write bool) (*volType, error) {
	id := r.PathValue("type_id")
	if write {
		if err := refuseInUse(ctx, q, id); err != nil {
			return nil, err
		}
	}
	t, err := s.getType(ctx, q, r, id, false)
	if errs.KindOf(err) == errs.NotFound {
		return nil, errs.E(errs.NotFound, "Volume type %s could not be found.", id)
	}
	return t, err
}

// refuseInUse answers Cinder's 400 when type id exists and volumes use it.
func refuseInUse(ctx context.Context, q db.Querier, id string) error {
	exists, err := typeExists(ctx, q, id)
	if err != nil || !exists {
		return err
	}
	inUse, err := typeInUse(ctx, q, id)
	if err == nil && inUse {
		err = errs.E(errs.Invalid, "Volume Type is currently in use.")
	}
	return err
}

func specNotFound(typeID, key string) error {
	return errs.E(errs.NotFound, "Volume Type %s has no extra specs with key %s.", typeID, key)
}

func (s *Service) listExtraSpecs(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume_extension:types_extra_specs:index", ""); err != nil {
		return err
	}
	t, err := s.typeForSpecs(r.Context(), s.deps.DB, r, false)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"extra_specs": s.visibleSpecs(r, t.ExtraSpecs)})
}

func (s *Service) showExtraSpec(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume_extension:types_extra_specs:show", ""); err != nil {
		return err
	}
	t, err := s.typeForSpecs(r.Context(), s.deps.DB, r, false)
	if err != nil {
		return err
	}
	key := r.PathValue("key")
	v, ok := s.visibleSpecs(r, t.ExtraSpecs)[key]
	if !ok {
		return specNotFound(t.ID, key)
	}
	return reply(w, http.StatusOK, map[string]string{key: v})
}

// parseSpecsBody reads {"extra_specs": {...}}; it returns the specs and
// the object as sent, which the response echoes.
func parseSpecsBody(r *http.Request) (map[string]*string, any, error) {
	body, err := decodeObject(r)
	if err != nil {
		return nil, nil, err
	}
	raw, ok := body["extra_specs"]
	if !ok {
		return nil, nil, invalidInput("extra_specs", body, "'extra_specs' is a required property")
	}
	specs, err := parseSpecs(raw)
	return specs, raw, err
}

func (s *Service) createExtraSpecs(w http.ResponseWriter, r *http.Request) error {
	specs, raw, err := parseSpecsBody(r)
	if err != nil {
		return err
	}
	if err := enforce(r, "volume_extension:types_extra_specs:create", ""); err != nil {
		return err
	}
	if err := s.writeSpecs(r, specs); err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"extra_specs": raw})
}

// parseSpecBody reads the one-spec body of PUT .../extra_specs/{key}.
func parseSpecBody(r *http.Request) (map[string]*string, map[string]any, error) {
	body, err := decodeObject(r)
	if err != nil {
		return nil, nil, err
	}
	if len(body) > 1 {
		return nil, nil, invalidInput("body", body, "%s has too many properties", pyRepr(body, true))
	}
	if len(body) == 0 {
		return nil, nil, invalidInput("body", body, "{} does not have enough properties")
	}
	specs, err := parseSpecs(body)
	return specs, body, err
}

func (s *Service) updateExtraSpec(w http.ResponseWriter, r *http.Request) error {
	specs, body, err := parseSpecBody(r)
	if err != nil {
		return err
	}
	if err := enforce(r, "volume_extension:types_extra_specs:update", ""); err != nil {
		return err
	}
	if _, ok := specs[r.PathValue("key")]; !ok {
		return errs.E(errs.Invalid, "Request body and URI mismatch")
	}
	if err := s.writeSpecs(r, specs); err != nil {
		return err
	}
	return reply(w, http.StatusOK, body)
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
		return putSpecs(ctx, tx, t.ID, specs)
	})
}

func (s *Service) deleteExtraSpec(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume_extension:types_extra_specs:delete", ""); err != nil {
		return err
	}
	ctx := r.Context()
	key := r.PathValue("key")
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		t, err := s.typeForSpecs(ctx, tx, r, true)
		if err != nil {
			return err
		}
		found, err := deleteSpec(ctx, tx, t.ID, key)
		if err == nil && !found {
			err = specNotFound(t.ID, key)
		}
		return err
	})
	if err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}
