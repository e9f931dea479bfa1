package identity

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/policy"
)

// flag reads a Keystone boolean query flag: present means true unless it
// says 0 or false.
func flag(r *http.Request, key string) bool {
	q := r.URL.Query()
	if !q.Has(key) {
		return false
	}
	v := strings.ToLower(q.Get(key))
	return v != "0" && v != "false"
}

// ---- roles

// immutableRole reports whether a role is one Bootstrap creates, which
// Keystone's bootstrap marks immutable.
func immutableRole(name string) bool {
	return name == auth.RoleAdmin || name == auth.RoleMember || name == auth.RoleReader || name == RoleService
}

var roles = &collection[*role]{
	member: "role", plural: "roles",
	items: func(s *snapshot) map[string]*role { return s.roles },
	order: func(a, b *role) int { return strings.Compare(a.Name, b.Name) },
	attrs: map[string]func(*role) any{
		"name": func(r *role) any { return r.Name },
		// a domain_id filter keeps nothing: Ashlar's roles are global
		"domain_id": none[*role],
	},
	render:       (*Service).roleJSON,
	createSchema: roleCreate, updateSchema: updateOf(roleCreate),
	attributes: []string{"id", "name", "domain_id", "description", "options"},
	build: func(s *Service, in map[string]any) (*role, error) {
		r := &role{}
		return r, changeRole(s, r, in)
	},
	change: changeRole,
	clone:  func(r *role) *role { c := *r; return &c },
	insert: insertRole, update: updateRole, remove: deleteRole,
	immutable: func(r *role) bool { return immutableRole(r.Name) },
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
	return s.withExtra(r, "roles", map[string]any{"id": r.ID, "name": r.Name, "domain_id": nil, "description": desc,
		"options": opts})
}

func changeRole(_ *Service, r *role, in map[string]any) error {
	if d, ok := in["domain_id"]; ok && d != nil && d != "" {
		if r.ID != "" {
			return errs.E(errs.Invalid, "Update of `domain_id` is not allowed.")
		}
		return errs.E(errs.Invalid, "Ashlar supports global roles only.")
	}
	set(&r.Name, in, "name")
	set(&r.Description, in, "description")
	return nil
}

// ---- grants

// grantTarget resolves the project, user and (optional) role of a grant URL.
func (s *Service) grantTarget(r *http.Request, withRole bool) (*project, *user, *role, error) {
	snap := s.snap.Load()
	p := snap.projects[r.PathValue("pid")]
	if p == nil {
		return nil, nil, nil, notFound("project", r.PathValue("pid"))
	}
	u := snap.users[r.PathValue("uid")]
	if u == nil {
		return nil, nil, nil, notFound("user", r.PathValue("uid"))
	}
	if !withRole {
		return p, u, nil, nil
	}
	ro := snap.roles[r.PathValue("rid")]
	if ro == nil {
		return nil, nil, nil, notFound("role", r.PathValue("rid"))
	}
	return p, u, ro, nil
}

func (s *Service) listGrants(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:list_grants", policy.Target{}); err != nil {
		return err
	}
	p, u, _, err := s.grantTarget(r, false)
	if err != nil {
		return err
	}
	snap := s.snap.Load()
	var out []map[string]any
	for _, id := range snap.direct[[2]string{u.ID, p.ID}] {
		if ro := snap.roles[id]; ro != nil {
			out = append(out, s.roleJSON(ro))
		}
	}
	return s.list(w, r, "roles", out)
}

// grant serves the check (GET, HEAD), create (PUT) and revoke (DELETE) of
// a user's role on a project; they differ in whether the grant must exist
// and in what they write (nothing for a check).
func (s *Service) grant(action string, mustExist bool, write func(context.Context, *db.Tx, assignment) error) authedFunc {
	return func(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
		if err := allow(c, action, policy.Target{}); err != nil {
			return err
		}
		p, u, ro, err := s.grantTarget(r, true)
		if err != nil {
			return err
		}
		if mustExist && !slices.Contains(s.snap.Load().direct[[2]string{u.ID, p.ID}], ro.ID) {
			return errs.E(errs.NotFound, "Could not find role assignment with role: %s, user or group: %s, project, domain, or system: %s.", ro.ID, u.ID, p.ID)
		}
		if write != nil {
			a := assignment{UserID: u.ID, ProjectID: p.ID, RoleID: ro.ID}
			if err := s.write(r.Context(), func(tx *db.Tx) error { return write(r.Context(), tx, a) }); err != nil {
				return err
			}
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// match reports whether an exact role assignment filter (absent = any)
// accepts v.
func match(r *http.Request, key, v string) bool {
	q := r.URL.Query()
	return !q.Has(key) || q.Get(key) == v
}

// listAssignments serves GET /v3/role_assignments with the filters the
// openstack CLI uses (user.id, role.id, scope.project.id, effective,
// include_names). Ashlar has no groups and no domain or system grants.
func (s *Service) listAssignments(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	q := r.URL.Query()
	// A user may list their own assignments, as in Keystone.
	if !(q.Get("user.id") == c.UserID && flag(r, "effective")) {
		if err := allow(c, "identity:list_role_assignments", policy.Target{}); err != nil {
			return err
		}
	}
	if q.Get("group.id") != "" || q.Get("scope.domain.id") != "" || q.Has("scope.system") {
		return s.list(w, r, "role_assignments", nil)
	}
	snap := s.snap.Load()
	names, effective := flag(r, "include_names"), flag(r, "effective")
	type row struct {
		a     assignment
		prior string
	}
	var rows []row
	for _, a := range snap.assignments {
		rows = append(rows, row{a: a})
		if effective {
			if ro := snap.roles[a.RoleID]; ro != nil {
				for _, n := range implied(ro.Name) {
					if ir := snap.roleByName[n]; ir != nil {
						rows = append(rows, row{a: assignment{a.UserID, a.ProjectID, ir.ID}, prior: a.RoleID})
					}
				}
			}
		}
	}
	var out []map[string]any
	seen := map[assignment]bool{}
	for _, x := range rows {
		a := x.a
		if !match(r, "user.id", a.UserID) || !match(r, "role.id", a.RoleID) || !match(r, "scope.project.id", a.ProjectID) || seen[a] {
			continue
		}
		seen[a] = true
		u, p, ro := snap.users[a.UserID], snap.projects[a.ProjectID], snap.roles[a.RoleID]
		if u == nil || p == nil || ro == nil {
			continue
		}
		roleM := map[string]any{"id": ro.ID}
		userM := map[string]any{"id": u.ID}
		projM := map[string]any{"id": p.ID}
		if names {
			roleM["name"] = ro.Name
			userM["name"], userM["domain"] = u.Name, domainRef(snap, u.DomainID)
			projM["name"], projM["domain"] = p.Name, domainRef(snap, p.DomainID)
		}
		links := map[string]any{"assignment": s.base() + "/projects/" + p.ID + "/users/" + u.ID + "/roles/" + ro.ID}
		if x.prior != "" {
			links["assignment"] = s.base() + "/projects/" + p.ID + "/users/" + u.ID + "/roles/" + x.prior
			links["prior_role"] = s.base() + "/roles/" + x.prior
		}
		out = append(out, map[string]any{"role": roleM, "user": userM, "scope": map[string]any{"project": projM}, "links": links})
	}
	return s.list(w, r, "role_assignments", out)
}
