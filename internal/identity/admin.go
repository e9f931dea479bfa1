package identity

import (
	"net/http"
	"slices"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/policy"
)

const maxNameLen = 255

func notFound(kind, id string) error {
	return errs.E(errs.NotFound, "Could not find %s: %s.", kind, id)
}

func conflict(kind, what string) error {
	return errs.E(errs.Conflict, "Conflict occurred attempting to store %s - Duplicate entry found with %s.", kind, what)
}

func (s *Service) self(kind, id string) map[string]any {
	return map[string]any{"self": s.base() + "/" + kind + "/" + id}
}

func (s *Service) domainJSON(d *domain) map[string]any {
	return map[string]any{"id": d.ID, "name": d.Name, "description": d.Description, "enabled": d.Enabled,
		"tags": []string{}, "options": map[string]any{}, "links": s.self("domains", d.ID)}
}

func (s *Service) projectJSON(p *project) map[string]any {
	return map[string]any{"id": p.ID, "name": p.Name, "domain_id": p.DomainID, "description": p.Description,
		"enabled": p.Enabled, "parent_id": p.DomainID, "is_domain": false, "tags": []string{},
		"options": map[string]any{}, "links": s.self("projects", p.ID)}
}

func (s *Service) userJSON(u *user) map[string]any {
	m := map[string]any{"id": u.ID, "name": u.Name, "domain_id": u.DomainID, "enabled": u.Enabled,
		"password_expires_at": nil, "options": map[string]any{}, "links": s.self("users", u.ID)}
	if u.Email != "" {
		m["email"] = u.Email
	}
	if u.Description != "" {
		m["description"] = u.Description
	}
	if u.DefaultProj != "" {
		m["default_project_id"] = u.DefaultProj
	}
	return m
}

func (s *Service) roleJSON(r *role) map[string]any {
	var desc any
	if r.Description != "" {
		desc = r.Description
	}
	opts := map[string]any{}
	if immutableRole(r.Name) {
		opts["immutable"] = true
	}
	return map[string]any{"id": r.ID, "name": r.Name, "domain_id": nil, "description": desc,
		"options": opts, "links": s.self("roles", r.ID)}
}

func (s *Service) serviceJSON(c *catalogService) map[string]any {
	m := map[string]any{"id": c.ID, "type": c.Type, "name": c.Name, "enabled": c.Enabled, "links": s.self("services", c.ID)}
	if c.Description != "" {
		m["description"] = c.Description
	}
	return m
}

func (s *Service) endpointJSON(e *endpoint) map[string]any {
	return map[string]any{"id": e.ID, "service_id": e.ServiceID, "interface": e.Interface, "region": e.Region,
		"region_id": e.Region, "url": e.URL, "enabled": e.Enabled, "links": s.self("endpoints", e.ID)}
}

func (s *Service) list(w http.ResponseWriter, r *http.Request, key string, items []map[string]any) error {
	if items == nil {
		items = []map[string]any{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{key: items, "links": s.links(r)})
	return nil
}

// match reports whether a list filter (absent = any) accepts v.
func match(r *http.Request, key, v string) bool {
	q := r.URL.Query()
	if !q.Has(key) {
		return true
	}
	return q.Get(key) == v
}

func matchBool(r *http.Request, key string, v bool) bool {
	q := r.URL.Query()
	if !q.Has(key) {
		return true
	}
	want := strings.ToLower(q.Get(key))
	return (want == "true" || want == "1" || want == "") == v
}

// ---- domains and regions

func (s *Service) listDomains(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:list_domains", policy.Target{}); err != nil {
		return err
	}
	snap := s.snap.Load()
	var out []map[string]any
	for _, d := range snap.domains {
		if match(r, "name", d.Name) && matchBool(r, "enabled", d.Enabled) {
			out = append(out, s.domainJSON(d))
		}
	}
	slices.SortFunc(out, byName)
	return s.list(w, r, "domains", out)
}

func byName(a, b map[string]any) int {
	return strings.Compare(a["name"].(string), b["name"].(string))
}

func (s *Service) getDomain(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:get_domain", policy.Target{}); err != nil {
		return err
	}
	d := s.snap.Load().domains[r.PathValue("id")]
	if d == nil {
		return notFound("domain", r.PathValue("id"))
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"domain": s.domainJSON(d)})
	return nil
}

// regions are the distinct regions of the catalog plus the configured one.
func (s *Service) regions() []string {
	set := []string{s.cfg.Identity.Region}
	for _, e := range s.snap.Load().endpoints {
		if e.Region != "" && !slices.Contains(set, e.Region) {
			set = append(set, e.Region)
		}
	}
	slices.Sort(set)
	return set
}

func (s *Service) regionJSON(id string) map[string]any {
	return map[string]any{"id": id, "description": "", "parent_region_id": nil, "links": s.self("regions", id)}
}

func (s *Service) listRegions(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	var out []map[string]any
	for _, id := range s.regions() {
		out = append(out, s.regionJSON(id))
	}
	return s.list(w, r, "regions", out)
}

func (s *Service) getRegion(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	id := r.PathValue("id")
	if !slices.Contains(s.regions(), id) {
		return notFound("region", id)
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"region": s.regionJSON(id)})
	return nil
}

// ---- projects

type projectBody struct {
	Project *struct {
		Name        *string `json:"name"`
		DomainID    *string `json:"domain_id"`
		Description *string `json:"description"`
		Enabled     *bool   `json:"enabled"`
		ParentID    *string `json:"parent_id"`
		IsDomain    *bool   `json:"is_domain"`
	} `json:"project"`
}

func checkName(field, name string) error {
	if strings.TrimSpace(name) == "" {
		return invalid(field, "'"+name+"' is too short")
	}
	if len(name) > maxNameLen {
		return invalid(field, "'"+name+"' is too long")
	}
	return nil
}

func (s *Service) listProjects(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:list_projects", policy.Target{}); err != nil {
		return err
	}
	snap := s.snap.Load()
	var out []map[string]any
	for _, p := range snap.projects {
		if match(r, "name", p.Name) && match(r, "domain_id", p.DomainID) && matchBool(r, "enabled", p.Enabled) &&
			match(r, "parent_id", p.DomainID) && !(r.URL.Query().Get("is_domain") == "true") {
			out = append(out, s.projectJSON(p))
		}
	}
	slices.SortFunc(out, byName)
	return s.list(w, r, "projects", out)
}

func (s *Service) getProject(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	id := r.PathValue("id")
	if err := allow(c, "identity:get_project", policy.Target{ProjectID: id}); err != nil {
		return err
	}
	p := s.snap.Load().projects[id]
	if p == nil {
		return notFound("project", id)
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"project": s.projectJSON(p)})
	return nil
}

func (s *Service) createProject(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:create_project", policy.Target{}); err != nil {
		return err
	}
	var b projectBody
	if err := api.DecodeJSON(r, &b, 0); err != nil {
		return err
	}
	if b.Project == nil {
		return invalid("request", "'project' is a required property")
	}
	in := b.Project
	if in.Name == nil {
		return invalid("project", "'name' is a required property")
	}
	if err := checkName("name", *in.Name); err != nil {
		return err
	}
	if in.IsDomain != nil && *in.IsDomain {
		return errs.E(errs.Invalid, "Ashlar does not create domains.")
	}
	p := &project{ID: newID(), Name: *in.Name, DomainID: DefaultDomainID, Enabled: true}
	if in.DomainID != nil && *in.DomainID != "" {
		p.DomainID = *in.DomainID
	}
	snap := s.snap.Load()
	if snap.domains[p.DomainID] == nil {
		return errs.E(errs.Invalid, "Could not find domain: %s.", p.DomainID)
	}
	if in.ParentID != nil && *in.ParentID != "" && *in.ParentID != p.DomainID {
		return errs.E(errs.Invalid, "Ashlar supports top-level projects only.")
	}
	if in.Description != nil {
		p.Description = *in.Description
	}
	if in.Enabled != nil {
		p.Enabled = *in.Enabled
	}
	err := s.write(r.Context(), func(tx *db.Tx) error {
		_, err := tx.ExecContext(r.Context(), `INSERT INTO identity_projects (id, name, domain_id, description, enabled, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, p.ID, p.Name, p.DomainID, p.Description, p.Enabled, db.Now())
		return err
	})
	if db.IsUniqueViolation(err) {
		return conflict("project", "name "+p.Name)
	}
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusCreated, map[string]any{"project": s.projectJSON(s.snap.Load().projects[p.ID])})
	return nil
}

func (s *Service) updateProject(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:update_project", policy.Target{}); err != nil {
		return err
	}
	id := r.PathValue("id")
	var b projectBody
	if err := api.DecodeJSON(r, &b, 0); err != nil {
		return err
	}
	if b.Project == nil {
		return invalid("request", "'project' is a required property")
	}
	old := s.snap.Load().projects[id]
	if old == nil {
		return notFound("project", id)
	}
	p := *old
	in := b.Project
	if in.Name != nil {
		if err := checkName("name", *in.Name); err != nil {
			return err
		}
		p.Name = *in.Name
	}
	if in.Description != nil {
		p.Description = *in.Description
	}
	if in.Enabled != nil {
		p.Enabled = *in.Enabled
	}
	if in.DomainID != nil && *in.DomainID != p.DomainID {
		return errs.E(errs.Invalid, "Update of `domain_id` is not allowed.")
	}
	err := s.write(r.Context(), func(tx *db.Tx) error {
		_, err := tx.ExecContext(r.Context(), `UPDATE identity_projects SET name = ?, description = ?, enabled = ? WHERE id = ?`,
			p.Name, p.Description, p.Enabled, id)
		return err
	})
	if db.IsUniqueViolation(err) {
		return conflict("project", "name "+p.Name)
	}
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"project": s.projectJSON(s.snap.Load().projects[id])})
	return nil
}

func (s *Service) deleteProject(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:delete_project", policy.Target{}); err != nil {
		return err
	}
	id := r.PathValue("id")
	if s.snap.Load().projects[id] == nil {
		return notFound("project", id)
	}
	err := s.write(r.Context(), func(tx *db.Tx) error {
		if _, err := tx.ExecContext(r.Context(), `DELETE FROM identity_assignments WHERE project_id = ?`, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(r.Context(), `UPDATE identity_users SET default_project_id = '' WHERE default_project_id = ?`, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(r.Context(), `DELETE FROM identity_projects WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- users

type userBody struct {
	User *struct {
		Name             *string `json:"name"`
		DomainID         *string `json:"domain_id"`
		Password         *string `json:"password"`
		Enabled          *bool   `json:"enabled"`
		Email            *string `json:"email"`
		Description      *string `json:"description"`
		DefaultProjectID *string `json:"default_project_id"`
	} `json:"user"`
}

func (s *Service) listUsers(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:list_users", policy.Target{}); err != nil {
		return err
	}
	snap := s.snap.Load()
	var out []map[string]any
	for _, u := range snap.users {
		if match(r, "name", u.Name) && match(r, "domain_id", u.DomainID) && matchBool(r, "enabled", u.Enabled) {
			out = append(out, s.userJSON(u))
		}
	}
	slices.SortFunc(out, byName)
	return s.list(w, r, "users", out)
}

func (s *Service) getUser(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	id := r.PathValue("id")
	if id != c.UserID && !c.IsAdmin() {
		return forbidden("identity:get_user")
	}
	u := s.snap.Load().users[id]
	if u == nil {
		return notFound("user", id)
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"user": s.userJSON(u)})
	return nil
}

func (s *Service) hash(pw string) (string, error) {
	if len(pw) > 72 {
		return "", invalid("password", "is longer than 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), s.bcryptCost)
	return string(h), err
}

func (s *Service) createUser(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:create_user", policy.Target{}); err != nil {
		return err
	}
	var b userBody
	if err := api.DecodeJSON(r, &b, 0); err != nil {
		return err
	}
	if b.User == nil {
		return invalid("request", "'user' is a required property")
	}
	in := b.User
	if in.Name == nil {
		return invalid("user", "'name' is a required property")
	}
	if err := checkName("name", *in.Name); err != nil {
		return err
	}
	u := &user{ID: newID(), Name: *in.Name, DomainID: DefaultDomainID, Enabled: true}
	if in.DomainID != nil && *in.DomainID != "" {
		u.DomainID = *in.DomainID
	}
	snap := s.snap.Load()
	if snap.domains[u.DomainID] == nil {
		return errs.E(errs.Invalid, "Could not find domain: %s.", u.DomainID)
	}
	if in.Enabled != nil {
		u.Enabled = *in.Enabled
	}
	if in.Email != nil {
		u.Email = *in.Email
	}
	if in.Description != nil {
		u.Description = *in.Description
	}
	if in.DefaultProjectID != nil && *in.DefaultProjectID != "" {
		if snap.projects[*in.DefaultProjectID] == nil {
			return errs.E(errs.Invalid, "Could not find project: %s.", *in.DefaultProjectID)
		}
		u.DefaultProj = *in.DefaultProjectID
	}
	if in.Password != nil && *in.Password != "" {
		h, err := s.hash(*in.Password)
		if err != nil {
			return err
		}
		u.PasswordHash = h
	}
	now := db.Now()
	err := s.write(r.Context(), func(tx *db.Tx) error {
		_, err := tx.ExecContext(r.Context(), `INSERT INTO identity_users (id, name, domain_id, password_hash, enabled, email,
			description, default_project_id, tokens_valid_after, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			u.ID, u.Name, u.DomainID, u.PasswordHash, u.Enabled, u.Email, u.Description, u.DefaultProj, now, now)
		return err
	})
	if db.IsUniqueViolation(err) {
		return conflict("user", "name "+u.Name+" at domain ID "+u.DomainID)
	}
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusCreated, map[string]any{"user": s.userJSON(s.snap.Load().users[u.ID])})
	return nil
}

func (s *Service) updateUser(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:update_user", policy.Target{}); err != nil {
		return err
	}
	id := r.PathValue("id")
	var b userBody
	if err := api.DecodeJSON(r, &b, 0); err != nil {
		return err
	}
	if b.User == nil {
		return invalid("request", "'user' is a required property")
	}
	snap := s.snap.Load()
	old := snap.users[id]
	if old == nil {
		return notFound("user", id)
	}
	u := *old
	in := b.User
	revoke := false
	if in.Name != nil {
		if err := checkName("name", *in.Name); err != nil {
			return err
		}
		u.Name = *in.Name
	}
	if in.DomainID != nil && *in.DomainID != u.DomainID {
		return errs.E(errs.Invalid, "Update of `domain_id` is not allowed.")
	}
	if in.Enabled != nil {
		revoke = revoke || u.Enabled && !*in.Enabled
		u.Enabled = *in.Enabled
	}
	if in.Email != nil {
		u.Email = *in.Email
	}
	if in.Description != nil {
		u.Description = *in.Description
	}
	if in.DefaultProjectID != nil {
		if *in.DefaultProjectID != "" && snap.projects[*in.DefaultProjectID] == nil {
			return errs.E(errs.Invalid, "Could not find project: %s.", *in.DefaultProjectID)
		}
		u.DefaultProj = *in.DefaultProjectID
	}
	if in.Password != nil {
		h, err := s.hash(*in.Password)
		if err != nil {
			return err
		}
		u.PasswordHash, revoke = h, true
	}
	if err := s.saveUser(r, &u, revoke); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"user": s.userJSON(s.snap.Load().users[id])})
	return nil
}

// saveUser writes u; revoke invalidates every token issued to u so far
// (password change, disable), as Keystone does.
func (s *Service) saveUser(r *http.Request, u *user, revoke bool) error {
	va := db.Timestamp{Time: u.ValidAfter}
	if revoke {
		va = db.Now()
	}
	err := s.write(r.Context(), func(tx *db.Tx) error {
		_, err := tx.ExecContext(r.Context(), `UPDATE identity_users SET name = ?, password_hash = ?, enabled = ?, email = ?,
			description = ?, default_project_id = ?, tokens_valid_after = ? WHERE id = ?`,
			u.Name, u.PasswordHash, u.Enabled, u.Email, u.Description, u.DefaultProj, va, u.ID)
		return err
	})
	if db.IsUniqueViolation(err) {
		return conflict("user", "name "+u.Name+" at domain ID "+u.DomainID)
	}
	return err
}

func (s *Service) changePassword(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	id := r.PathValue("id")
	if id != c.UserID {
		return forbidden("identity:change_password")
	}
	var b struct {
		User *struct {
			Password         string `json:"password"`
			OriginalPassword string `json:"original_password"`
		} `json:"user"`
	}
	if err := api.DecodeJSON(r, &b, 0); err != nil {
		return err
	}
	if b.User == nil || b.User.Password == "" {
		return invalid("user", "'password' is a required property")
	}
	old := s.snap.Load().users[id]
	if old == nil {
		return notFound("user", id)
	}
	if bcrypt.CompareHashAndPassword([]byte(old.PasswordHash), []byte(b.User.OriginalPassword)) != nil {
		return errUnauthorized
	}
	u := *old
	h, err := s.hash(b.User.Password)
	if err != nil {
		return err
	}
	u.PasswordHash = h
	if err := s.saveUser(r, &u, true); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) deleteUser(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:delete_user", policy.Target{}); err != nil {
		return err
	}
	id := r.PathValue("id")
	if s.snap.Load().users[id] == nil {
		return notFound("user", id)
	}
	err := s.write(r.Context(), func(tx *db.Tx) error {
		if _, err := tx.ExecContext(r.Context(), `DELETE FROM identity_assignments WHERE user_id = ?`, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(r.Context(), `DELETE FROM identity_users WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) listUserProjects(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	id := r.PathValue("id")
	if id != c.UserID && !c.IsAdmin() {
		return forbidden("identity:list_user_projects")
	}
	snap := s.snap.Load()
	if snap.users[id] == nil {
		return notFound("user", id)
	}
	var out []map[string]any
	for _, p := range snap.userProjects(id) {
		out = append(out, s.projectJSON(p))
	}
	return s.list(w, r, "projects", out)
}
