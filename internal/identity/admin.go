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

// none is the value of a filter attribute Ashlar's entities never have.
func none[T any](T) any { return nil }

// ---- domains and regions

var domains = &collection[*domain]{
	member: "domain", plural: "domains",
	items: func(s *snapshot) map[string]*domain { return s.domains },
	order: func(a, b *domain) int { return strings.Compare(a.Name, b.Name) },
	attrs: map[string]func(*domain) any{
		"name":    func(d *domain) any { return d.Name },
		"enabled": func(d *domain) any { return d.Enabled },
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
		if matchAll(fs, none) {
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
	items: func(s *snapshot) map[string]*project { return s.projects },
	order: func(a, b *project) int { return strings.Compare(a.Name, b.Name) },
	attrs: map[string]func(*project) any{
		"domain_id": func(p *project) any { return p.DomainID },
		"enabled":   func(p *project) any { return p.Enabled },
		"name":      func(p *project) any { return p.Name },
		"parent_id": func(p *project) any { return p.DomainID }, // top-level projects only
		"is_domain": func(*project) any { return false },
	},
	render: (*Service).projectJSON,
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

func (s *Service) projectJSON(p *project) map[string]any {
	return s.withExtra(p, "projects", map[string]any{"id": p.ID, "name": p.Name, "domain_id": p.DomainID,
		"description": p.Description, "enabled": p.Enabled, "parent_id": p.DomainID, "is_domain": false,
		"tags": []string{}, "options": map[string]any{}})
}

func buildProject(s *Service, in map[string]any) (*project, error) {
	if isDomain, _ := in["is_domain"].(bool); isDomain {
		return nil, errs.E(errs.Invalid, "Ashlar does not create domains.")
	}
	p := &project{DomainID: DefaultDomainID, Enabled: true}
	set(&p.Name, in, "name")
	if d, _ := strField(in, "domain_id"); d != "" {
		p.DomainID = d
	}
	if s.snap.Load().domains[p.DomainID] == nil {
		return nil, errs.E(errs.Invalid, "Could not find domain: %s.", p.DomainID)
	}
	if parent, _ := strField(in, "parent_id"); parent != "" && parent != p.DomainID {
		return nil, errs.E(errs.Invalid, "Ashlar supports top-level projects only.")
	}
	set(&p.Description, in, "description")
	set(&p.Enabled, in, "enabled")
	return p, nil
}

func changeProject(_ *Service, p *project, in map[string]any) error {
	set(&p.Name, in, "name")
	set(&p.Description, in, "description")
	set(&p.Enabled, in, "enabled")
	if d, ok := strField(in, "domain_id"); ok && d != p.DomainID {
		return errs.E(errs.Invalid, "Update of `domain_id` is not allowed.")
	}
	return nil
}

// ---- users

var users = &collection[*user]{
	member: "user", plural: "users",
	items: func(s *snapshot) map[string]*user { return s.users },
	order: func(a, b *user) int { return strings.Compare(a.Name, b.Name) },
	// password_expires_at, a filter in Keystone, is none here: no Ashlar
	// password expires.
	attrs: map[string]func(*user) any{
		"domain_id": func(u *user) any { return u.DomainID },
		"enabled":   func(u *user) any { return u.Enabled },
		"name":      func(u *user) any { return u.Name },
		// Ashlar's users are local: none is federated
		"idp_id": none[*user], "protocol_id": none[*user], "unique_id": none[*user],
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
	set(&u.Name, in, "name")
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
	set(&u.Name, in, "name")
	if d, ok := strField(in, "domain_id"); ok && d != u.DomainID {
		return errs.E(errs.Invalid, "Update of `domain_id` is not allowed.")
	}
	if e, ok := in["enabled"].(bool); ok {
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

// userProjectList lists a user's projects: projects with the filters Keystone
// honours there.
var userProjectList = func() *collection[*project] {
	k := *projects
	k.attrs = map[string]func(*project) any{}
	for _, a := range []string{"domain_id", "enabled", "name"} {
		k.attrs[a] = projects.attrs[a]
	}
	return &k
}()

func (s *Service) listUserProjects(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	id := r.PathValue("id")
	if id != c.UserID && !c.IsAdmin() {
		return forbidden("identity:list_user_projects")
	}
	snap := s.snap.Load()
	if snap.users[id] == nil {
		return notFound("user", id)
	}
	return s.list(w, r, "projects", userProjectList.filter(s, r, snap.userProjects(id)))
}
