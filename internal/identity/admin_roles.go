package identity

import (
	"net/http"
	"slices"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/api"
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

func (s *Service) listRoles(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:list_roles", policy.Target{}); err != nil {
		return err
	}
	if r.URL.Query().Get("domain_id") != "" {
		return s.list(w, r, "roles", nil) // no domain-specific roles
	}
	var out []map[string]any
	for _, ro := range s.snap.Load().roles {
		if match(r, "name", ro.Name) {
			out = append(out, s.roleJSON(ro))
		}
	}
	slices.SortFunc(out, byName)
	return s.list(w, r, "roles", out)
}

func (s *Service) getRole(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:get_role", policy.Target{}); err != nil {
		return err
	}
	ro := s.snap.Load().roles[r.PathValue("id")]
	if ro == nil {
		return notFound("role", r.PathValue("id"))
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"role": s.roleJSON(ro)})
	return nil
}

func (s *Service) createRole(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:create_role", policy.Target{}); err != nil {
		return err
	}
	var b struct {
		Role *struct {
			Name        string  `json:"name"`
			Description string  `json:"description"`
			DomainID    *string `json:"domain_id"`
		} `json:"role"`
	}
	if err := api.DecodeJSON(r, &b, 0); err != nil {
		return err
	}
	if b.Role == nil {
		return invalid("request", "'role' is a required property")
	}
	if err := checkName("name", b.Role.Name); err != nil {
		return err
	}
	if b.Role.DomainID != nil && *b.Role.DomainID != "" {
		return errs.E(errs.Invalid, "Ashlar supports global roles only.")
	}
	ro := &role{ID: newID(), Name: b.Role.Name, Description: b.Role.Description}
	err := s.write(r.Context(), func(tx *db.Tx) error {
		_, err := tx.ExecContext(r.Context(), `INSERT INTO identity_roles (id, name, description) VALUES (?, ?, ?)`, ro.ID, ro.Name, ro.Description)
		return err
	})
	if db.IsUniqueViolation(err) {
		return conflict("role", "name "+ro.Name)
	}
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusCreated, map[string]any{"role": s.roleJSON(ro)})
	return nil
}

func (s *Service) deleteRole(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:delete_role", policy.Target{}); err != nil {
		return err
	}
	id := r.PathValue("id")
	ro := s.snap.Load().roles[id]
	if ro == nil {
		return notFound("role", id)
	}
	if immutableRole(ro.Name) {
		return errs.E(errs.Forbidden, "Role %s is immutable.", ro.Name)
	}
	err := s.write(r.Context(), func(tx *db.Tx) error {
		if _, err := tx.ExecContext(r.Context(), `DELETE FROM identity_assignments WHERE role_id = ?`, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(r.Context(), `DELETE FROM identity_roles WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
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

func (s *Service) checkGrant(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:check_grant", policy.Target{}); err != nil {
		return err
	}
	p, u, ro, err := s.grantTarget(r, true)
	if err != nil {
		return err
	}
	if !slices.Contains(s.snap.Load().direct[[2]string{u.ID, p.ID}], ro.ID) {
		return errs.E(errs.NotFound, "Could not find role assignment with role: %s, user or group: %s, project, domain, or system: %s.", ro.ID, u.ID, p.ID)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) createGrant(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:create_grant", policy.Target{}); err != nil {
		return err
	}
	p, u, ro, err := s.grantTarget(r, true)
	if err != nil {
		return err
	}
	err = s.write(r.Context(), func(tx *db.Tx) error {
		_, err := tx.ExecContext(r.Context(), `INSERT INTO identity_assignments (user_id, project_id, role_id) VALUES (?, ?, ?)
			ON CONFLICT DO NOTHING`, u.ID, p.ID, ro.ID)
		return err
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) revokeGrant(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:revoke_grant", policy.Target{}); err != nil {
		return err
	}
	p, u, ro, err := s.grantTarget(r, true)
	if err != nil {
		return err
	}
	if !slices.Contains(s.snap.Load().direct[[2]string{u.ID, p.ID}], ro.ID) {
		return errs.E(errs.NotFound, "Could not find role assignment with role: %s, user or group: %s, project, domain, or system: %s.", ro.ID, u.ID, p.ID)
	}
	err = s.write(r.Context(), func(tx *db.Tx) error {
		_, err := tx.ExecContext(r.Context(), `DELETE FROM identity_assignments WHERE user_id = ? AND project_id = ? AND role_id = ?`,
			u.ID, p.ID, ro.ID)
		return err
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
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

// ---- services and endpoints

func (s *Service) listServices(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:list_services", policy.Target{}); err != nil {
		return err
	}
	var out []map[string]any
	for _, svc := range s.snap.Load().services {
		if match(r, "type", svc.Type) && match(r, "name", svc.Name) {
			out = append(out, s.serviceJSON(svc))
		}
	}
	return s.list(w, r, "services", out)
}

func (s *Service) findService(id string) *catalogService {
	for _, svc := range s.snap.Load().services {
		if svc.ID == id {
			return svc
		}
	}
	return nil
}

func (s *Service) getService(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:get_service", policy.Target{}); err != nil {
		return err
	}
	svc := s.findService(r.PathValue("id"))
	if svc == nil {
		return notFound("service", r.PathValue("id"))
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"service": s.serviceJSON(svc)})
	return nil
}

func (s *Service) createService(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:create_service", policy.Target{}); err != nil {
		return err
	}
	var b struct {
		Service *struct {
			Type        string `json:"type"`
			Name        string `json:"name"`
			Description string `json:"description"`
			Enabled     *bool  `json:"enabled"`
		} `json:"service"`
	}
	if err := api.DecodeJSON(r, &b, 0); err != nil {
		return err
	}
	if b.Service == nil {
		return invalid("request", "'service' is a required property")
	}
	if err := checkName("type", b.Service.Type); err != nil {
		return err
	}
	svc := &catalogService{ID: newID(), Type: b.Service.Type, Name: b.Service.Name, Description: b.Service.Description, Enabled: true}
	if b.Service.Enabled != nil {
		svc.Enabled = *b.Service.Enabled
	}
	err := s.write(r.Context(), func(tx *db.Tx) error {
		_, err := tx.ExecContext(r.Context(), `INSERT INTO identity_services (id, type, name, description, enabled) VALUES (?, ?, ?, ?, ?)`,
			svc.ID, svc.Type, svc.Name, svc.Description, svc.Enabled)
		return err
	})
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusCreated, map[string]any{"service": s.serviceJSON(svc)})
	return nil
}

func (s *Service) deleteService(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:delete_service", policy.Target{}); err != nil {
		return err
	}
	id := r.PathValue("id")
	if s.findService(id) == nil {
		return notFound("service", id)
	}
	err := s.write(r.Context(), func(tx *db.Tx) error {
		if _, err := tx.ExecContext(r.Context(), `DELETE FROM identity_endpoints WHERE service_id = ?`, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(r.Context(), `DELETE FROM identity_services WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) listEndpoints(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:list_endpoints", policy.Target{}); err != nil {
		return err
	}
	var out []map[string]any
	for _, e := range s.snap.Load().endpoints {
		if match(r, "service_id", e.ServiceID) && match(r, "interface", e.Interface) && match(r, "region_id", e.Region) {
			out = append(out, s.endpointJSON(e))
		}
	}
	return s.list(w, r, "endpoints", out)
}

func (s *Service) findEndpoint(id string) *endpoint {
	for _, e := range s.snap.Load().endpoints {
		if e.ID == id {
			return e
		}
	}
	return nil
}

func (s *Service) getEndpoint(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:get_endpoint", policy.Target{}); err != nil {
		return err
	}
	e := s.findEndpoint(r.PathValue("id"))
	if e == nil {
		return notFound("endpoint", r.PathValue("id"))
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"endpoint": s.endpointJSON(e)})
	return nil
}

func (s *Service) createEndpoint(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:create_endpoint", policy.Target{}); err != nil {
		return err
	}
	var b struct {
		Endpoint *struct {
			ServiceID string `json:"service_id"`
			Interface string `json:"interface"`
			URL       string `json:"url"`
			Region    string `json:"region"`
			RegionID  string `json:"region_id"`
			Enabled   *bool  `json:"enabled"`
		} `json:"endpoint"`
	}
	if err := api.DecodeJSON(r, &b, 0); err != nil {
		return err
	}
	in := b.Endpoint
	if in == nil {
		return invalid("request", "'endpoint' is a required property")
	}
	switch in.Interface {
	case "public", "internal", "admin":
	default:
		return invalid("interface", "'"+in.Interface+"' is not one of ['admin', 'internal', 'public']")
	}
	if !strings.HasPrefix(in.URL, "http://") && !strings.HasPrefix(in.URL, "https://") {
		return invalid("url", "'"+in.URL+"' does not match '^[a-zA-Z0-9+.-]+:.+'")
	}
	if s.findService(in.ServiceID) == nil {
		return errs.E(errs.Invalid, "Could not find service: %s.", in.ServiceID)
	}
	e := &endpoint{ID: newID(), ServiceID: in.ServiceID, Interface: in.Interface, URL: in.URL, Region: in.RegionID, Enabled: true}
	if e.Region == "" {
		e.Region = in.Region
	}
	if in.Enabled != nil {
		e.Enabled = *in.Enabled
	}
	err := s.write(r.Context(), func(tx *db.Tx) error {
		_, err := tx.ExecContext(r.Context(), `INSERT INTO identity_endpoints (id, service_id, interface, region, url, enabled)
			VALUES (?, ?, ?, ?, ?, ?)`, e.ID, e.ServiceID, e.Interface, e.Region, e.URL, e.Enabled)
		return err
	})
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusCreated, map[string]any{"endpoint": s.endpointJSON(e)})
	return nil
}

func (s *Service) deleteEndpoint(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if err := allow(c, "identity:delete_endpoint", policy.Target{}); err != nil {
		return err
	}
	id := r.PathValue("id")
	if s.findEndpoint(id) == nil {
		return notFound("endpoint", id)
	}
	err := s.write(r.Context(), func(tx *db.Tx) error {
		_, err := tx.ExecContext(r.Context(), `DELETE FROM identity_endpoints WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
