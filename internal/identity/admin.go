package identity

import (
	"maps"
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

func notFound(kind, id string) error {
	return errs.E(errs.NotFound, "Could not find %s: %s.", kind, id)
}

func conflict(kind, what string) error {
	return errs.E(errs.Conflict, "Conflict occurred attempting to store %s - Duplicate entry found with %s.", kind, what)
}

func (s *Service) self(kind, id string) map[string]any {
	return map[string]any{"self": s.base() + "/" + kind + "/" + id}
}

func (s *Service) list(w http.ResponseWriter, r *http.Request, key string, items []map[string]any) error {
	if items == nil {
		items = []map[string]any{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{key: items, "links": s.links(r)})
	return nil
}

// byName lists a snapshot map in name order.
func byName[T any](m map[string]T, name func(T) string) []T {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(a, b T) int { return strings.Compare(name(a), name(b)) })
	return out
}

// ---- domains and regions

var domains = &collection[*domain]{
	member: "domain", plural: "domains",
	filters: []string{"name", "enabled"},
	all:     func(s *snapshot) []*domain { return byName(s.domains, func(d *domain) string { return d.Name }) },
	find:    func(s *snapshot, id string) (*domain, bool) { d, ok := s.domains[id]; return d, ok },
	attr: func(d *domain, a string) any {
		switch a {
		case "name":
			return d.Name
		case "enabled":
			return d.Enabled
		}
		return nil
	},
	render: (*Service).domainJSON,
}

func (s *Service) domainJSON(d *domain) map[string]any {
	return map[string]any{"id": d.ID, "name": d.Name, "description": d.Description, "enabled": d.Enabled,
		"tags": []string{}, "options": map[string]any{}, "links": s.self("domains", d.ID)}
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
	// Ashlar's regions have no parents: a parent_region_id filter keeps none.
	fs := parseFilters(r.URL.Query(), []string{"parent_region_id"})
	var out []map[string]any
	for _, id := range s.regions() {
		if matchAll(fs, func(string) any { return nil }) {
			out = append(out, s.regionJSON(id))
		}
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

var projects = &collection[*project]{
	member: "project", plural: "projects",
	filters: []string{"domain_id", "enabled", "name", "parent_id", "is_domain"},
	all:     func(s *snapshot) []*project { return byName(s.projects, func(p *project) string { return p.Name }) },
	find:    func(s *snapshot, id string) (*project, bool) { p, ok := s.projects[id]; return p, ok },
	attr:    projectAttr,
	render:  (*Service).projectJSON,
	showAllowed: func(c *auth.Caller, id string) error {
		return allow(c, "identity:get_project", policy.Target{ProjectID: id})
	},
	createSchema: projectCreate, updateSchema: projectUpdate,
	attributes: []string{"id", "name", "domain_id", "description", "enabled", "parent_id", "is_domain", "tags", "options"},
	build:      buildProject,
	change:     changeProject,
	clone:      func(p *project) *project { c := *p; return &c },
	insert:     insertProject, update: updateProject, remove: deleteProject,
	echoExtra: true,
}

func projectAttr(p *project, a string) any {
	switch a {
	case "domain_id", "parent_id":
		return p.DomainID
	case "enabled":
		return p.Enabled
	case "name":
		return p.Name
	case "is_domain":
		return false
	}
	return nil
}

func (s *Service) projectJSON(p *project) map[string]any {
	return s.withExtra(p, "projects", map[string]any{"id": p.ID, "name": p.Name, "domain_id": p.DomainID,
		"description": p.Description, "enabled": p.Enabled, "parent_id": p.DomainID, "is_domain": false,
		"tags": []string{}, "options": map[string]any{}})
}

func buildProject(s *Service, in map[string]any) (*project, error) {
	if isDomain, _ := boolField(in, "is_domain"); isDomain {
		return nil, errs.E(errs.Invalid, "Ashlar does not create domains.")
	}
	p := &project{DomainID: DefaultDomainID, Enabled: true}
	p.Name, _ = strField(in, "name")
	if d, _ := strField(in, "domain_id"); d != "" {
		p.DomainID = d
	}
	if s.snap.Load().domains[p.DomainID] == nil {
		return nil, errs.E(errs.Invalid, "Could not find domain: %s.", p.DomainID)
	}
	if parent, _ := strField(in, "parent_id"); parent != "" && parent != p.DomainID {
		return nil, errs.E(errs.Invalid, "Ashlar supports top-level projects only.")
	}
	p.Description, _ = strField(in, "description")
	if e, ok := boolField(in, "enabled"); ok {
		p.Enabled = e
	}
	return p, nil
}

func changeProject(_ *Service, p *project, in map[string]any) error {
	if name, ok := strField(in, "name"); ok {
		p.Name = name
	}
	if d, ok := strField(in, "description"); ok {
		p.Description = d
	}
	if e, ok := boolField(in, "enabled"); ok {
		p.Enabled = e
	}
	if d, ok := strField(in, "domain_id"); ok && d != p.DomainID {
		return errs.E(errs.Invalid, "Update of `domain_id` is not allowed.")
	}
	return nil
}

// ---- users

var users = &collection[*user]{
	member: "user", plural: "users",
	// password_expires_at, a filter in Keystone, is not: no Ashlar password expires.
	filters: []string{"domain_id", "enabled", "idp_id", "name", "protocol_id", "unique_id"},
	all:     func(s *snapshot) []*user { return byName(s.users, func(u *user) string { return u.Name }) },
	find:    func(s *snapshot, id string) (*user, bool) { u, ok := s.users[id]; return u, ok },
	attr: func(u *user, a string) any {
		switch a {
		case "domain_id":
			return u.DomainID
		case "enabled":
			return u.Enabled
		case "name":
			return u.Name
		}
		return nil // idp_id, protocol_id, unique_id: Ashlar users are local
	},
	render: (*Service).userJSON,
	// users may read themselves
	showAllowed: func(c *auth.Caller, id string) error {
		if id == c.UserID {
			return nil
		}
		return allow(c, "identity:get_user", policy.Target{})
	},
	createSchema: userCreate, updateSchema: userUpdate,
	attributes: []string{"id", "name", "domain_id", "password", "enabled", "default_project_id", "password_expires_at",
		"options", "federated"},
	build:  buildUser,
	change: changeUser,
	clone: func(u *user) *user {
		c := *u
		c.Options = maps.Clone(u.Options)
		return &c
	},
	insert: insertUser, update: updateUser, remove: deleteUser,
	echoExtra: true,
}

func (s *Service) userJSON(u *user) map[string]any {
	opts := u.Options
	if opts == nil {
		opts = map[string]any{}
	}
	m := map[string]any{"id": u.ID, "name": u.Name, "domain_id": u.DomainID, "enabled": u.Enabled,
		"password_expires_at": nil, "options": opts}
	if u.DefaultProj != "" {
		m["default_project_id"] = u.DefaultProj
	}
	return s.withExtra(u, "users", m)
}

func (s *Service) hash(pw string) (string, error) {
	if len(pw) > 72 {
		return "", invalid("password", "is longer than 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), s.bcryptCost)
	return string(h), err
}

func buildUser(s *Service, in map[string]any) (*user, error) {
	u := &user{DomainID: DefaultDomainID, Enabled: true}
	u.Name, _ = strField(in, "name")
	if d, _ := strField(in, "domain_id"); d != "" {
		u.DomainID = d
	}
	snap := s.snap.Load()
	if snap.domains[u.DomainID] == nil {
		return nil, errs.E(errs.Invalid, "Could not find domain: %s.", u.DomainID)
	}
	if fed, _ := in["federated"].([]any); len(fed) > 0 {
		// Keystone checks the identity provider first; Ashlar has none.
		return nil, errs.E(errs.Invalid, "Could not find Identity Provider: %s", fed[0].(map[string]any)["idp_id"])
	}
	u.Options = map[string]any{}
	if err := changeUser(s, u, in); err != nil {
		return nil, err
	}
	return u, nil
}

// changeUser applies a validated create or update body to u; a new
// password or a disable invalidates the user's tokens.
func changeUser(s *Service, u *user, in map[string]any) error {
	revoke := false
	if name, ok := strField(in, "name"); ok {
		u.Name = name
	}
	if d, ok := strField(in, "domain_id"); ok && d != u.DomainID {
		return errs.E(errs.Invalid, "Update of `domain_id` is not allowed.")
	}
	if e, ok := boolField(in, "enabled"); ok {
		revoke = u.Enabled && !e
		u.Enabled = e
	}
	if p, ok := strField(in, "default_project_id"); ok {
		if p != "" && s.snap.Load().projects[p] == nil {
			return errs.E(errs.Invalid, "Could not find project: %s.", p)
		}
		u.DefaultProj = p
	}
	if pw, ok := in["password"]; ok {
		u.PasswordHash, revoke = "", true
		if pw, _ := pw.(string); pw != "" {
			h, err := s.hash(pw)
			if err != nil {
				return err
			}
			u.PasswordHash = h
		}
	}
	opts, _ := in["options"].(map[string]any)
	for k, v := range opts {
		if v == nil {
			delete(u.Options, k) // null unsets an option
		} else {
			u.Options[k] = v
		}
	}
	if revoke && u.ID != "" {
		u.ValidAfter = db.Now().Time
	}
	return nil
}

// changePassword serves POST /v3/users/{id}/password. As in Keystone it
// needs no token and applies no policy: knowing the original password is
// the check, so an admin who knows it may change it like the user.
func (s *Service) changePassword(w http.ResponseWriter, r *http.Request) error {
	in, err := memberBody(r, "user", false, passwordChange)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	old := s.snap.Load().users[id]
	hash := s.dummyHash
	if old != nil && old.PasswordHash != "" {
		hash = []byte(old.PasswordHash)
	}
	// Always run bcrypt, so unknown users cost what known ones do.
	ok := bcrypt.CompareHashAndPassword(hash, []byte(in["original_password"].(string))) == nil
	if old == nil || old.PasswordHash == "" || !ok {
		s.logger.Info("identity: password change refused", "user", id, "known", old != nil)
		return errUnauthorized
	}
	if !old.Enabled {
		return errs.E(errs.Unauthorized, "The account is disabled for user: %s.", id)
	}
	if locked, _ := old.Options[optLockPassword].(bool); locked {
		return errs.E(errs.Invalid, "You cannot change your password at this time due to password policy disallowing password changes. Please contact your administrator to reset your password.")
	}
	u := users.clone(old)
	if err := changeUser(s, u, map[string]any{"password": in["password"]}); err != nil {
		return err
	}
	if err := s.write(r.Context(), func(tx *db.Tx) error { return updateUser(r.Context(), tx, u) }); err != nil {
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
	fs := parseFilters(r.URL.Query(), []string{"domain_id", "enabled", "name"})
	var out []map[string]any
	for _, p := range snap.userProjects(id) {
		if matchAll(fs, func(a string) any { return projectAttr(p, a) }) {
			out = append(out, s.projectJSON(p))
		}
	}
	return s.list(w, r, "projects", out)
}
