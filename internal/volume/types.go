package volume

import (
	"context"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// StoreSpec is the extra spec naming the image store uploads go to.
const StoreSpec = "image_service:store_id"

// volType is a volume type with its extra specs.
type volType struct {
	ID          string
	Name        string
	Description *string
	IsPublic    bool
	CreatedAt   db.Timestamp
	UpdatedAt   db.Timestamp
	ExtraSpecs  map[string]string
}

// userVisibleSpecs are the extra specs non-admins may see (Cinder's
// USER_VISIBLE_EXTRA_SPECS); image_service:store_id is not among them.
var userVisibleSpecs = map[string]bool{"RESKEY:availability_zones": true, "multiattach": true, "replication_enabled": true}

func (s *Service) ensureDefaultType(ctx context.Context) error {
	name := s.deps.Config.Volume.DefaultVolumeType
	if name == "" {
		name = "__DEFAULT__"
	}
	desc := "Default Volume Type"
	_, err := s.deps.DB.ExecContext(ctx, `INSERT INTO volume_types (id, name, description, is_public, created_at)
		VALUES (?, ?, ?, TRUE, ?) ON CONFLICT (name) DO NOTHING`, uuid.NewString(), name, desc, db.Now())
	return err
}

func (s *Service) defaultTypeName() string {
	if n := s.deps.Config.Volume.DefaultVolumeType; n != "" {
		return n
	}
	return "__DEFAULT__"
}

const typeCols = `id, name, description, is_public, created_at, updated_at`

func scanType(sc interface{ Scan(...any) error }) (*volType, error) {
	t := &volType{}
	err := sc.Scan(&t.ID, &t.Name, &t.Description, &t.IsPublic, &t.CreatedAt, &t.UpdatedAt)
	return t, err
}

func loadSpecs(ctx context.Context, q db.Querier, t *volType) error {
	rows, err := q.QueryContext(ctx, `SELECT key, value FROM volume_type_extra_specs WHERE type_id = ?`, t.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	t.ExtraSpecs = map[string]string{}
	for rows.Next() {
		var k string
		var v *string
		if err := rows.Scan(&k, &v); err != nil {
			return err
		}
		if v != nil {
			t.ExtraSpecs[k] = *v
		} else {
			t.ExtraSpecs[k] = ""
		}
	}
	return rows.Err()
}

// getType finds a type by id ("default" is the default type); name lookups
// are used by volume create. Private types the caller has no access to
// are not found.
func (s *Service) getType(ctx context.Context, q db.Querier, r *http.Request, idOrName string, byName bool) (*volType, error) {
	var row interface{ Scan(...any) error }
	switch {
	case idOrName == "default":
		row = q.QueryRowContext(ctx, `SELECT `+typeCols+` FROM volume_types WHERE name = ?`, s.defaultTypeName())
	case byName:
		row = q.QueryRowContext(ctx, `SELECT `+typeCols+` FROM volume_types WHERE id = ? OR name = ? ORDER BY CASE WHEN id = ? THEN 0 ELSE 1 END LIMIT 1`, idOrName, idOrName, idOrName)
	default:
		row = q.QueryRowContext(ctx, `SELECT `+typeCols+` FROM volume_types WHERE id = ?`, idOrName)
	}
	t, err := scanType(row)
	if db.IsNoRows(err) {
		return nil, errs.E(errs.NotFound, "Volume type with id %s could not be found.", idOrName)
	}
	if err != nil {
		return nil, err
	}
	if r != nil && !t.IsPublic && !caller(r).IsAdmin() {
		var n int
		if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM volume_type_projects WHERE type_id = ? AND project_id = ?`, t.ID, caller(r).ProjectID).Scan(&n); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, errs.E(errs.NotFound, "Volume type with id %s could not be found.", idOrName)
		}
	}
	return t, loadSpecs(ctx, q, t)
}

// typeView renders a type; create and update leave out fields their
// response schemas refuse.
func typeView(r *http.Request, t *volType, kind string) map[string]any {
	m := map[string]any{"id": t.ID, "name": t.Name, "description": t.Description, "is_public": t.IsPublic}
	if allowed(r, "volume_extension:access_types_extra_specs", "") {
		specs := map[string]string{}
		sensitive := allowed(r, "volume_extension:types_extra_specs:read_sensitive", "")
		for k, v := range t.ExtraSpecs {
			if sensitive || userVisibleSpecs[k] {
				specs[k] = v
			}
		}
		m["extra_specs"] = specs
	}
	if kind != "update" {
		m["os-volume-type-access:is_public"] = t.IsPublic
	}
	if kind == "show" && allowed(r, "volume_extension:access_types_qos_specs_id", "") {
		m["qos_specs_id"] = nil
	}
	return m
}

func (s *Service) listTypes(w http.ResponseWriter, r *http.Request) {
	if err := enforce(r, "volume_extension:type_get_all", ""); err != nil {
		fail(w, r, err)
		return
	}
	ctx := r.Context()
	c := caller(r)
	q := `SELECT ` + typeCols + ` FROM volume_types`
	args := []any{}
	isPublic := r.URL.Query().Get("is_public")
	switch {
	case c.IsAdmin() && strings.EqualFold(isPublic, "none"):
	case c.IsAdmin() && isPublic != "":
		b, err := parseBool("is_public", isPublic)
		if err != nil {
			fail(w, r, err)
			return
		}
		if b {
			// As Cinder: public types, and private ones shared with the project.
			q += ` WHERE is_public = TRUE OR id IN (SELECT type_id FROM volume_type_projects WHERE project_id = ?)`
			args = append(args, c.ProjectID)
		} else {
			q += ` WHERE is_public = FALSE`
		}
	default:
		q += ` WHERE is_public = TRUE OR id IN (SELECT type_id FROM volume_type_projects WHERE project_id = ?)`
		args = append(args, c.ProjectID)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT 1000`
	rows, err := s.deps.DB.QueryContext(ctx, q, args...)
	if err != nil {
		fail(w, r, err)
		return
	}
	var types []*volType
	for rows.Next() {
		t, err := scanType(rows)
		if err != nil {
			rows.Close()
			fail(w, r, err)
			return
		}
		types = append(types, t)
	}
	rows.Close()
	out := []any{}
	for _, t := range types {
		if err := loadSpecs(ctx, s.deps.DB, t); err != nil {
			fail(w, r, err)
			return
		}
		out = append(out, typeView(r, t, "show"))
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"volume_types": out})
}

func (s *Service) showType(w http.ResponseWriter, r *http.Request) {
	if err := enforce(r, "volume_extension:type_get", ""); err != nil {
		fail(w, r, err)
		return
	}
	t, err := s.getType(r.Context(), s.deps.DB, r, r.PathValue("type_id"), false)
	if err != nil {
		fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"volume_type": typeView(r, t, "show")})
}

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

func (s *Service) createType(w http.ResponseWriter, r *http.Request) {
	if err := enforce(r, "volume_extension:types_manage", ""); err != nil {
		fail(w, r, err)
		return
	}
	vt, err := decodeEntity(r, "volume_type")
	if err != nil {
		fail(w, r, err)
		return
	}
	if err := checkAllowed("volume_type", vt, "name", "description", "extra_specs", "os-volume-type-access:is_public", "is_public"); err != nil {
		fail(w, r, err)
		return
	}
	nameV, ok := vt["name"]
	if !ok {
		fail(w, r, invalidInput("volume_type", vt, "'name' is a required property"))
		return
	}
	name, ok := nameV.(string)
	if !ok {
		fail(w, r, invalidInput("name", nameV, "%s is not of type 'string'", pyRepr(nameV, true)))
		return
	}
	if name == "" {
		fail(w, r, invalidInput("name", name, "'' is too short"))
		return
	}
	if len([]rune(name)) > 255 {
		fail(w, r, invalidInput("name", name, "'%s' is too long", name))
		return
	}
	if strings.TrimSpace(name) == "" {
		fail(w, r, errs.E(errs.Invalid, "Volume type name can not be empty."))
		return
	}
	desc, err := optString(vt, "description", 255)
	if err != nil {
		fail(w, r, err)
		return
	}
	public := true
	for _, k := range []string{"os-volume-type-access:is_public", "is_public"} {
		if v, ok := vt[k]; ok {
			if public, err = parseBool(k, v); err != nil {
				fail(w, r, err)
				return
			}
		}
	}
	specs := map[string]*string{}
	if v, ok := vt["extra_specs"]; ok && v != nil {
		if specs, err = parseSpecs(v); err != nil {
			fail(w, r, err)
			return
		}
	}
	if v := specs[StoreSpec]; v != nil {
		// Real Cinder skips this check on type create; validating here
		// keeps a type from ever naming a store uploads cannot reach.
		if err := s.validateStore(r, *v); err != nil {
			fail(w, r, err)
			return
		}
	}
	t := &volType{ID: uuid.NewString(), Name: strings.TrimSpace(name), Description: desc, IsPublic: public, CreatedAt: db.Now(), ExtraSpecs: map[string]string{}}
	err = s.deps.DB.InTx(r.Context(), func(tx *db.Tx) error {
		if _, err := tx.ExecContext(r.Context(), `INSERT INTO volume_types (id, name, description, is_public, created_at) VALUES (?, ?, ?, ?, ?)`,
			t.ID, t.Name, t.Description, t.IsPublic, t.CreatedAt); err != nil {
			if db.IsUniqueViolation(err) {
				return errs.E(errs.Conflict, "Volume Type %s already exists.", t.Name)
			}
			return err
		}
		return putSpecs(r.Context(), tx, t.ID, specs, t.ExtraSpecs)
	})
	if err != nil {
		fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"volume_type": typeView(r, t, "create")})
}

// putSpecs upserts specs for a type and records them in into.
func putSpecs(ctx context.Context, tx *db.Tx, typeID string, specs map[string]*string, into map[string]string) error {
	keys := make([]string, 0, len(specs))
	for k := range specs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, `INSERT INTO volume_type_extra_specs (type_id, key, value) VALUES (?, ?, ?)
			ON CONFLICT (type_id, key) DO UPDATE SET value = excluded.value`, typeID, k, specs[k]); err != nil {
			return err
		}
		if into != nil {
			if specs[k] != nil {
				into[k] = *specs[k]
			} else {
				into[k] = ""
			}
		}
	}
	if len(keys) > 0 {
		_, err := tx.ExecContext(ctx, `UPDATE volume_types SET updated_at = ? WHERE id = ?`, db.Now(), typeID)
		return err
	}
	return nil
}

func (s *Service) updateType(w http.ResponseWriter, r *http.Request) {
	if err := enforce(r, "volume_extension:types_manage", ""); err != nil {
		fail(w, r, err)
		return
	}
	vt, err := decodeEntity(r, "volume_type")
	if err != nil {
		fail(w, r, err)
		return
	}
	if err := checkAllowed("volume_type", vt, "name", "description", "is_public"); err != nil {
		fail(w, r, err)
		return
	}
	name, err := optString(vt, "name", 255)
	if err != nil {
		fail(w, r, err)
		return
	}
	desc, err := optString(vt, "description", 255)
	if err != nil {
		fail(w, r, err)
		return
	}
	_, hasDesc := vt["description"]
	var public *bool
	if v, ok := vt["is_public"]; ok && v != nil {
		b, err := parseBool("is_public", v)
		if err != nil {
			fail(w, r, err)
			return
		}
		public = &b
	}
	if name == nil && !hasDesc && public == nil {
		fail(w, r, errs.E(errs.Invalid, "Specify volume type name, description, is_public or a combination thereof."))
		return
	}
	if name != nil && strings.TrimSpace(*name) == "" {
		fail(w, r, errs.E(errs.Invalid, "Volume type name can not be empty."))
		return
	}
	ctx := r.Context()
	var t *volType
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		var err error
		if t, err = s.getType(ctx, tx, r, r.PathValue("type_id"), false); err != nil {
			return err
		}
		if name != nil {
			if t.Name == s.defaultTypeName() && strings.TrimSpace(*name) != t.Name {
				return errs.E(errs.Invalid, "The default volume type cannot be renamed.")
			}
			t.Name = strings.TrimSpace(*name)
		}
		if hasDesc {
			t.Description = desc
		}
		if public != nil {
			t.IsPublic = *public
		}
		t.UpdatedAt = db.Now()
		_, err = tx.ExecContext(ctx, `UPDATE volume_types SET name = ?, description = ?, is_public = ?, updated_at = ? WHERE id = ?`,
			t.Name, t.Description, t.IsPublic, t.UpdatedAt, t.ID)
		if db.IsUniqueViolation(err) {
			return errs.E(errs.Conflict, "Volume Type %s already exists.", t.Name)
		}
		return err
	})
	if err != nil {
		fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"volume_type": typeView(r, t, "update")})
}

func (s *Service) deleteType(w http.ResponseWriter, r *http.Request) {
	if err := enforce(r, "volume_extension:types_manage", ""); err != nil {
		fail(w, r, err)
		return
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
		if err := typeInUse(ctx, tx, t.ID); err != nil {
			return errs.E(errs.Invalid, "Target volume type is still in use.")
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM volume_types WHERE id = ?`, t.ID)
		return err
	})
	if err != nil {
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// typeInUse returns an Invalid error when any volume uses the type.
func typeInUse(ctx context.Context, q db.Querier, typeID string) error {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM volumes WHERE type_id = ?`, typeID).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return errs.E(errs.Invalid, "Volume Type is currently in use.")
	}
	return nil
}

func (s *Service) typeAction(w http.ResponseWriter, r *http.Request) {
	body, err := decodeObject(r)
	if err != nil {
		fail(w, r, err)
		return
	}
	var action string
	var arg map[string]any
	for _, a := range []string{"addProjectAccess", "removeProjectAccess"} {
		if v, ok := body[a]; ok {
			action = a
			arg, _ = v.(map[string]any)
		}
	}
	if action == "" {
		fail(w, r, errs.E(errs.Invalid, "There is no such action: %s", firstKey(body)))
		return
	}
	if err := enforce(r, "volume_extension:volume_type_access:"+action, ""); err != nil {
		fail(w, r, err)
		return
	}
	project, _ := arg["project"].(string)
	if project == "" {
		fail(w, r, errs.E(errs.Invalid, "Missing required element 'project' in request body."))
		return
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
			_, err = tx.ExecContext(ctx, `INSERT INTO volume_type_projects (type_id, project_id) VALUES (?, ?)`, t.ID, project)
			if db.IsUniqueViolation(err) {
				return errs.E(errs.Conflict, "Volume type access for %s / %s combination already exists.", t.ID, project)
			}
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM volume_type_projects WHERE type_id = ? AND project_id = ?`, t.ID, project)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.E(errs.NotFound, "Volume type access not found for %s / %s combination.", t.ID, project)
		}
		return nil
	})
	if err != nil {
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func firstKey(m map[string]any) string {
	for k := range m {
		return k
	}
	return ""
}

func (s *Service) listTypeAccess(w http.ResponseWriter, r *http.Request) {
	if err := enforce(r, "volume_extension:volume_type_access", ""); err != nil {
		fail(w, r, err)
		return
	}
	ctx := r.Context()
	t, err := s.getType(ctx, s.deps.DB, r, r.PathValue("type_id"), false)
	if err != nil {
		fail(w, r, err)
		return
	}
	if t.IsPublic {
		fail(w, r, errs.E(errs.NotFound, "Volume type access not found for public volume type."))
		return
	}
	rows, err := s.deps.DB.QueryContext(ctx, `SELECT project_id FROM volume_type_projects WHERE type_id = ? ORDER BY project_id`, t.ID)
	if err != nil {
		fail(w, r, err)
		return
	}
	defer rows.Close()
	out := []any{}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			fail(w, r, err)
			return
		}
		out = append(out, map[string]string{"volume_type_id": t.ID, "project_id": p})
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"volume_type_access": out})
}
