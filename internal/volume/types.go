package volume

import (
	"context"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// StoreSpec is the extra spec naming the image store uploads go to.
const StoreSpec = "image_service:store_id"

// defaultTypeKey is the type id that stands for the default type.
const defaultTypeKey = "default"

// userVisibleSpecs are the extra specs non-admins may see (Cinder's
// USER_VISIBLE_EXTRA_SPECS); image_service:store_id is not among them.
var userVisibleSpecs = map[string]bool{"RESKEY:availability_zones": true, "multiattach": true, "replication_enabled": true}

// multiattach reports whether volumes of the type are multiattach: Cinder
// compares the spec with "<is> True" exactly.
func (t *volType) multiattach() bool { return t.ExtraSpecs["multiattach"] == "<is> True" }

func (s *Service) ensureDefaultType(ctx context.Context) error {
	return insertDefaultType(ctx, s.deps.DB, s.defaultTypeName())
}

func (s *Service) defaultTypeName() string {
	if n := s.deps.Config.Volume.DefaultVolumeType; n != "" {
		return n
	}
	return "__DEFAULT__"
}

// getType finds a type by id (defaultTypeKey is the default type), or with
// byName by id or name (volume create and retype). With r, a private type
// the caller has no access to is not found.
func (s *Service) getType(ctx context.Context, q db.Querier, r *http.Request, idOrName string, byName bool) (*volType, error) {
	var t *volType
	var err error
	switch {
	case idOrName == defaultTypeKey:
		t, err = typeByName(ctx, q, s.defaultTypeName(), idOrName)
	case byName:
		t, err = typeByIDOrName(ctx, q, idOrName)
	default:
		t, err = typeByID(ctx, q, idOrName)
	}
	if err != nil {
		return nil, err
	}
	if r == nil || t.IsPublic || caller(r).IsAdmin() {
		return t, nil
	}
	ok, err := typeAccessible(ctx, q, t.ID, caller(r).ProjectID)
	if err == nil && !ok {
		err = typeNotFound(idOrName)
	}
	return t, err
}

// typeView renders a type; create and update leave out fields their
// response schemas refuse.
func (s *Service) typeView(r *http.Request, t *volType, kind string) map[string]any {
	m := map[string]any{"id": t.ID, "name": t.Name, "description": t.Description, "is_public": t.IsPublic}
	if allowed(r, "volume_extension:access_types_extra_specs", "") {
		m["extra_specs"] = s.visibleSpecs(r, t.ExtraSpecs)
	}
	if kind != "update" {
		m["os-volume-type-access:is_public"] = t.IsPublic
	}
	if kind == "show" && allowed(r, "volume_extension:access_types_qos_specs_id", "") {
		m["qos_specs_id"] = nil
	}
	return m
}

// visibleSpecs are the specs the caller may read: all for admins, else
// the user-visible ones.
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

func (s *Service) listTypes(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume_extension:type_get_all", ""); err != nil {
		return err
	}
	which, err := typeListingFor(r)
	if err != nil {
		return err
	}
	types, err := listTypes(r.Context(), s.deps.DB, which, caller(r).ProjectID)
	if err != nil {
		return err
	}
	out := []any{}
	for _, t := range types {
		out = append(out, s.typeView(r, t, "show"))
	}
	return reply(w, http.StatusOK, map[string]any{"volume_types": out})
}

// typeListingFor reads is_public: admins choose public (with the private
// types shared with their project, as in Cinder), private or all ("none");
// everyone else sees the public types and those shared with the project.
func typeListingFor(r *http.Request) (typeListing, error) {
	isPublic := r.URL.Query().Get("is_public")
	switch {
	case !caller(r).IsAdmin() || isPublic == "":
		return typesVisible, nil
	case strings.EqualFold(isPublic, "none"):
		return typesAll, nil
	}
	public, err := parseBool("is_public", isPublic)
	if err != nil || public {
		return typesVisible, err
	}
	return typesPrivate, nil
}

func (s *Service) showType(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume_extension:type_get", ""); err != nil {
		return err
	}
	t, err := s.getType(r.Context(), s.deps.DB, r, r.PathValue("type_id"), false)
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"volume_type": s.typeView(r, t, "show")})
}

// typeCreateRequest is a validated volume type create body.
type typeCreateRequest struct {
	Name        string
	Description *string
	IsPublic    bool
	Specs       map[string]*string
}

func parseTypeCreate(r *http.Request) (*typeCreateRequest, error) {
	vt, err := decodeEntity(r, "volume_type")
	if err != nil {
		return nil, err
	}
	if err := checkAllowed("volume_type", vt, "name", "description", "extra_specs", "os-volume-type-access:is_public", "is_public"); err != nil {
		return nil, err
	}
	nameV, ok := vt["name"]
	if !ok {
		return nil, invalidInput("volume_type", vt, "'name' is a required property")
	}
	name, ok := nameV.(string)
	switch {
	case !ok:
		return nil, invalidInput("name", nameV, "%s is not of type 'string'", pyRepr(nameV, true))
	case name == "":
		return nil, invalidInput("name", name, "'' is too short")
	case len([]rune(name)) > 255:
		return nil, invalidInput("name", name, "'%s' is too long", name)
	case strings.TrimSpace(name) == "":
		return nil, errs.E(errs.Invalid, "Volume type name can not be empty.")
	}
	c := &typeCreateRequest{Name: strings.TrimSpace(name), IsPublic: true, Specs: map[string]*string{}}
	if c.Description, err = optString(vt, "description", 255); err != nil {
		return nil, err
	}
	for _, k := range []string{"os-volume-type-access:is_public", "is_public"} {
		if v, ok := vt[k]; ok {
			if c.IsPublic, err = parseBool(k, v); err != nil {
				return nil, err
			}
		}
	}
	if v := vt["extra_specs"]; v != nil {
		if c.Specs, err = parseSpecs(v); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (s *Service) createType(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume_extension:types_manage", ""); err != nil {
		return err
	}
	req, err := parseTypeCreate(r)
	if err != nil {
		return err
	}
	if v := req.Specs[StoreSpec]; v != nil {
		// Real Cinder skips this check on type create; validating here
		// keeps a type from ever naming a store uploads cannot reach.
		if err := s.validateStore(r, *v); err != nil {
			return err
		}
	}
	t := &volType{ID: uuid.NewString(), Name: req.Name, Description: req.Description, IsPublic: req.IsPublic,
		CreatedAt: db.Now(), ExtraSpecs: map[string]string{}}
	for k, v := range req.Specs {
		t.ExtraSpecs[k] = deref(v)
	}
	ctx := r.Context()
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if err := insertType(ctx, tx, t); err != nil {
			return err
		}
		return putSpecs(ctx, tx, t.ID, req.Specs)
	})
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"volume_type": s.typeView(r, t, "create")})
}

// typeUpdateRequest is a validated volume type update body; nil fields
// are not changed.
type typeUpdateRequest struct {
	Name        *string
	Description *string
	SetDesc     bool
	IsPublic    *bool
}

func parseTypeUpdate(r *http.Request) (*typeUpdateRequest, error) {
	vt, err := decodeEntity(r, "volume_type")
	if err != nil {
		return nil, err
	}
	if err := checkAllowed("volume_type", vt, "name", "description", "is_public"); err != nil {
		return nil, err
	}
	u := &typeUpdateRequest{}
	if u.Name, err = optString(vt, "name", 255); err != nil {
		return nil, err
	}
	if u.Description, err = optString(vt, "description", 255); err != nil {
		return nil, err
	}
	_, u.SetDesc = vt["description"]
	if v := vt["is_public"]; v != nil {
		b, err := parseBool("is_public", v)
		if err != nil {
			return nil, err
		}
		u.IsPublic = &b
	}
	if u.Name == nil && !u.SetDesc && u.IsPublic == nil {
		return nil, errs.E(errs.Invalid, "Specify volume type name, description, is_public or a combination thereof.")
	}
	if u.Name != nil {
		if strings.TrimSpace(*u.Name) == "" {
			return nil, errs.E(errs.Invalid, "Volume type name can not be empty.")
		}
		*u.Name = strings.TrimSpace(*u.Name)
	}
	return u, nil
}

func (s *Service) updateType(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume_extension:types_manage", ""); err != nil {
		return err
	}
	u, err := parseTypeUpdate(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var t *volType
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		var err error
		if t, err = s.getType(ctx, tx, r, r.PathValue("type_id"), false); err != nil {
			return err
		}
		if u.Name != nil {
			if t.Name == s.defaultTypeName() && *u.Name != t.Name {
				return errs.E(errs.Invalid, "The default volume type cannot be renamed.")
			}
			t.Name = *u.Name
		}
		if u.SetDesc {
			t.Description = u.Description
		}
		if u.IsPublic != nil {
			t.IsPublic = *u.IsPublic
		}
		t.UpdatedAt = db.Now()
		return updateTypeRow(ctx, tx, t)
	})
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"volume_type": s.typeView(r, t, "update")})
}

func (s *Service) deleteType(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume_extension:types_manage", ""); err != nil {
		return err
	}
	ctx := r.Context()
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		t, err := s.getType(ctx, tx, r, r.PathValue("type_id"), false)
		if err != nil {
			return err
		}
		if t.Name == s.defaultTypeName() {
			return errs.E(errs.Invalid, "Default volume type can not be deleted.")
		}
		inUse, err := typeInUse(ctx, tx, t.ID)
		if err != nil {
			return err
		}
		if inUse {
			return errs.E(errs.Invalid, "Target volume type is still in use.")
		}
		return deleteTypeRow(ctx, tx, t.ID)
	})
	if err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

// typeAccessActions are the actions of POST /types/{id}/action.
var typeAccessActions = []string{"addProjectAccess", "removeProjectAccess"}

func (s *Service) typeAction(w http.ResponseWriter, r *http.Request) error {
	body, err := decodeObject(r)
	if err != nil {
		return err
	}
	var action string
	var arg map[string]any
	for _, a := range typeAccessActions {
		if v, ok := body[a]; ok {
			action = a
			arg, _ = v.(map[string]any)
		}
	}
	if action == "" {
		return errs.E(errs.Invalid, "There is no such action: %s", firstKey(body))
	}
	if err := enforce(r, "volume_extension:volume_type_access:"+action, ""); err != nil {
		return err
	}
	project, _ := arg["project"].(string)
	if project == "" {
		return errs.E(errs.Invalid, "Missing required element 'project' in request body.")
	}
	ctx := r.Context()
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		t, err := s.getType(ctx, tx, r, r.PathValue("type_id"), false)
		if err != nil {
			return err
		}
		if t.IsPublic {
			return errs.E(errs.Invalid, "Invalid volume type: Type access modification is not applicable to public volume type.")
		}
		if action == "addProjectAccess" {
			return addTypeAccess(ctx, tx, t.ID, project)
		}
		removed, err := removeTypeAccess(ctx, tx, t.ID, project)
		if err == nil && !removed {
			err = errs.E(errs.NotFound, "Volume type access not found for %s / %s combination.", t.ID, project)
		}
		return err
	})
	if err != nil {
		return err
	}
	return replyEmpty(w, http.StatusAccepted)
}

func firstKey(m map[string]any) string {
	for k := range m {
		return k
	}
	return ""
}

func (s *Service) listTypeAccess(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume_extension:volume_type_access", ""); err != nil {
		return err
	}
	ctx := r.Context()
	t, err := s.getType(ctx, s.deps.DB, r, r.PathValue("type_id"), false)
	if err != nil {
		return err
	}
	if t.IsPublic {
		return errs.E(errs.NotFound, "Volume type access not found for public volume type.")
	}
	projects, err := typeAccessProjects(ctx, s.deps.DB, t.ID)
	if err != nil {
		return err
	}
	out := []any{}
	for _, p := range projects {
		out = append(out, map[string]string{"volume_type_id": t.ID, "project_id": p})
	}
	return reply(w, http.StatusOK, map[string]any{"volume_type_access": out})
}

// TypeStores maps every volume type's name to its image_service:store_id
// ("" when it has none: its uploads go to the default store), for
// operators' views of store drift (`ashlar stores`).
func TypeStores(ctx context.Context, q db.Querier) (map[string]string, error) {
	types, err := listTypes(ctx, q, typesAll, "")
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(types))
	for _, t := range types {
		out[t.Name] = t.ExtraSpecs[StoreSpec]
	}
	return out, nil
}
