package identity

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Keystone renders token times with microseconds.
const keystoneTime = "2006-01-02T15:04:05.000000Z"

type ref struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Domain *ref   `json:"domain"`
}

type authRequest struct {
	Auth struct {
		Identity *struct {
			Methods  []string `json:"methods"`
			Password *struct {
				User *struct {
					ID       string `json:"id"`
					Name     string `json:"name"`
					Domain   *ref   `json:"domain"`
					Password string `json:"password"`
				} `json:"user"`
			} `json:"password"`
			Token *struct {
				ID string `json:"id"`
			} `json:"token"`
		} `json:"identity"`
		Scope json.RawMessage `json:"scope"`
	} `json:"auth"`
}

type scopeRequest struct {
	Project *ref            `json:"project"`
	Domain  *ref            `json:"domain"`
	System  json.RawMessage `json:"system"`
}

func invalid(field, msg string) error {
	return errs.E(errs.Invalid, "Invalid input for field '%s': %s", field, msg)
}

// issueToken handles POST /v3/auth/tokens.
func (s *Service) issueToken(w http.ResponseWriter, r *http.Request) {
	p, err := s.authenticate(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	tok, err := seal(s.signer(), p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("X-Subject-Token", tok)
	api.WriteJSON(w, http.StatusCreated, map[string]any{"token": s.tokenBody(r, p)})
}

// authenticate checks the credentials of an auth request and returns the
// payload of the token to issue.
func (s *Service) authenticate(r *http.Request) (*payload, error) {
	var req authRequest
	if err := api.DecodeJSON(r, &req, 64<<10); err != nil {
		return nil, err
	}
	id := req.Auth.Identity
	if id == nil {
		return nil, invalid("auth", "'identity' is a required property")
	}
	if len(id.Methods) == 0 {
		return nil, invalid("identity", "'methods' is a required property")
	}
	snap := s.snap.Load()
	now := s.now().Truncate(time.Microsecond)
	p := &payload{IssuedAt: now, ExpiresAt: now.Add(s.cfg.Identity.TokenExpiration), AuditID: newAuditID()}
	p.ChainID = p.AuditID
	var u *user
	var parent *payload
	for _, m := range id.Methods {
		switch m {
		case "password":
			if id.Password == nil || id.Password.User == nil {
				return nil, invalid("identity", "'password' is a required property")
			}
			pu := id.Password.User
			var cand *user
			switch {
			case pu.ID != "":
				cand = snap.users[pu.ID]
			case pu.Name != "":
				if pu.Domain == nil || pu.Domain.ID == "" && pu.Domain.Name == "" {
					return nil, errs.E(errs.Invalid, "Expecting to find domain in user. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.")
				}
				if d := snap.findDomain(pu.Domain); d != nil {
					cand = snap.userByName[[2]string{d.ID, pu.Name}]
				}
			default:
				return nil, invalid("user", "'id' or 'name' is required")
			}
			hash := s.dummyHash
			if cand != nil && cand.PasswordHash != "" {
				hash = []byte(cand.PasswordHash)
			}
			// Always run bcrypt, so unknown users cost what known ones do.
			ok := bcrypt.CompareHashAndPassword(hash, []byte(pu.Password)) == nil
			if cand == nil || !ok || pu.Password == "" {
				s.logger.Info("identity: authentication failed", "user", pu.Name+pu.ID, "known", cand != nil)
				return nil, errUnauthorized
			}
			if u != nil && u.ID != cand.ID {
				return nil, errUnauthorized
			}
			u = cand
			p.Methods |= methodPassword
		case "token":
			if id.Token == nil || id.Token.ID == "" {
				return nil, invalid("identity", "'token' is a required property")
			}
			pp, _, err := s.check(r.Context(), id.Token.ID)
			if err != nil {
				return nil, errUnauthorized
			}
			cand := snap.users[pp.UserID]
			if cand == nil || u != nil && u.ID != cand.ID {
				return nil, errUnauthorized
			}
			u, parent = cand, pp
			p.Methods |= methodToken | pp.Methods
		default:
			return nil, errs.E(errs.Unauthorized, "Attempted to authenticate with an unsupported method.")
		}
	}
	if !u.Enabled {
		return nil, errUnauthorized
	}
	if d := snap.domains[u.DomainID]; d == nil || !d.Enabled {
		return nil, errUnauthorized
	}
	if used := p.methodNames(); !mfaSatisfied(u, used) {
		names := make([]any, len(used))
		for i, m := range used {
			names[i] = m
		}
		return nil, errs.E(errs.Unauthorized, "Insufficient auth methods received for %s. Auth Methods Provided: %s.", u.ID, pyRepr(names))
	}
	if parent != nil {
		// A rescoped token lives no longer than its parent and keeps its chain.
		p.ExpiresAt, p.ChainID = parent.ExpiresAt, parent.ChainID
	}
	pr, err := s.scope(snap, req.Auth.Scope, u)
	if err != nil {
		return nil, err
	}
	if pr != nil {
		p.ProjectID = pr.ID
	}
	p.UserID = u.ID
	return p, nil
}

// mfaSatisfied applies a user's multi_factor_auth_rules as Keystone does:
// unless multi_factor_auth_enabled is false, one rule, reduced to the
// methods this server offers (password and token; Keystone likewise
// ignores methods it has not loaded), must be covered by the methods used.
// Keystone then answers with an auth receipt to continue with; Ashlar
// issues none, so a rule needing both methods is met in one request.
func mfaSatisfied(u *user, used []string) bool {
	rules, _ := u.Options[optMFARules].([]any)
	if enabled, ok := u.Options[optMFAEnabled].(bool); len(rules) == 0 || ok && !enabled {
		return true
	}
	for _, rule := range rules {
		met := true
		for _, m := range rule.([]any) {
			if (m == "password" || m == "token") && !slices.Contains(used, m.(string)) {
				met = false
			}
		}
		if met {
			return true
		}
	}
	return false
}

// scope resolves the requested scope to a project the user has a role on,
// or nil for an unscoped token. Without a scope, the user's default project
// is used when the user has a role there, as Keystone does.
func (s *Service) scope(snap *snapshot, raw json.RawMessage, u *user) (*project, error) {
	var pr *project
	trimmed := strings.TrimSpace(string(raw))
	switch {
	case trimmed == "" || trimmed == "null":
		if u.DefaultProj == "" {
			return nil, nil
		}
		pr = snap.projects[u.DefaultProj]
		if pr == nil || !pr.Enabled || len(snap.direct[[2]string{u.ID, pr.ID}]) == 0 {
			return nil, nil
		}
		return pr, nil
	case trimmed == `"unscoped"`:
		return nil, nil
	}
	var sc scopeRequest
	if err := json.Unmarshal(raw, &sc); err != nil {
		return nil, invalid("scope", "must be an object or \"unscoped\"")
	}
	switch {
	case sc.Project != nil:
		switch {
		case sc.Project.ID != "":
			pr = snap.projects[sc.Project.ID]
		case sc.Project.Name != "":
			if sc.Project.Domain == nil || sc.Project.Domain.ID == "" && sc.Project.Domain.Name == "" {
				return nil, errs.E(errs.Invalid, "Expecting to find domain in project. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.")
			}
			if d := snap.findDomain(sc.Project.Domain); d != nil {
				pr = snap.projByName[[2]string{d.ID, sc.Project.Name}]
			}
		default:
			return nil, invalid("project", "'id' or 'name' is required")
		}
		if pr == nil || !pr.Enabled || len(snap.direct[[2]string{u.ID, pr.ID}]) == 0 {
			return nil, errUnauthorized
		}
		return pr, nil
	case sc.Domain != nil, len(sc.System) > 0:
		// Ashlar assigns roles on projects only; like Keystone for a user
		// without a domain or system role, refuse.
		return nil, errUnauthorized
	}
	return nil, invalid("scope", "one of 'project', 'domain' or 'system' is required")
}

func (s *snapshot) findDomain(d *ref) *domain {
	if d.ID != "" {
		return s.domains[d.ID]
	}
	return s.domainByName[d.Name]
}

// tokenBody renders a token as Keystone does.
func (s *Service) tokenBody(r *http.Request, p *payload) map[string]any {
	snap := s.snap.Load()
	u := snap.users[p.UserID]
	body := map[string]any{
		"methods":    p.methodNames(),
		"user":       map[string]any{"id": u.ID, "name": u.Name, "domain": domainRef(snap, u.DomainID), "password_expires_at": nil},
		"audit_ids":  p.auditIDs(),
		"expires_at": p.ExpiresAt.UTC().Format(keystoneTime),
		"issued_at":  p.IssuedAt.UTC().Format(keystoneTime),
	}
	if p.ProjectID == "" {
		return body
	}
	pr := snap.projects[p.ProjectID]
	body["project"] = map[string]any{"id": pr.ID, "name": pr.Name, "domain": domainRef(snap, pr.DomainID)}
	body["is_domain"] = false
	roles := []map[string]any{}
	for _, ro := range snap.effectiveRoles(u.ID, pr.ID) {
		roles = append(roles, map[string]any{"id": ro.ID, "name": ro.Name})
	}
	body["roles"] = roles
	if _, no := r.URL.Query()["nocatalog"]; !no {
		body["catalog"] = catalogJSON(snap, pr.ID)
	}
	return body
}

func domainRef(snap *snapshot, id string) map[string]any {
	name := ""
	if d := snap.domains[id]; d != nil {
		name = d.Name
	}
	return map[string]any{"id": id, "name": name}
}

// catalogJSON is the token (and /v3/auth/catalog) form of the catalog:
// an endpoint shows its extras, as in Keystone.
func catalogJSON(snap *snapshot, projectID string) []map[string]any {
	out := []map[string]any{}
	snap.walkCatalog(projectID, func(svc *catalogService, eps []*endpoint, urls []string) {
		list := []map[string]any{}
		for i, ep := range eps {
			region := regionValue(ep.Region)
			list = append(list, overlay(ep.Extra, map[string]any{"id": ep.ID, "interface": ep.Interface,
				"region": region, "region_id": region, "url": urls[i]}))
		}
		out = append(out, map[string]any{"id": svc.ID, "type": svc.Type, "name": svc.Name, "endpoints": list})
	})
	return out
}

// RoleService is the role Keystone's policy lets validate any token
// (keystonemiddleware's service users hold it).
const RoleService = "service"

// subject validates X-Subject-Token on behalf of caller c: admins (and,
// when validating, holders of the service role) may look at any token,
// users at their own.
func (s *Service) subject(r *http.Request, c *auth.Caller) (*payload, error) {
	tok := r.Header.Get("X-Subject-Token")
	if tok == "" {
		return nil, errs.E(errs.Invalid, "Expecting to find X-Subject-Token in header. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.")
	}
	p, sc, err := s.check(r.Context(), tok)
	if err != nil {
		return nil, errs.E(errs.NotFound, "Could not find token: %s.", tok)
	}
	service := r.Method != http.MethodDelete && c.HasRole(RoleService)
	if !c.IsAdmin() && !service && sc.UserID != c.UserID {
		action := "identity:validate_token"
		if r.Method == http.MethodDelete {
			action = "identity:revoke_token"
		}
		return nil, forbidden(action)
	}
	return p, nil
}

func (s *Service) validateToken(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	p, err := s.subject(r, c)
	if err != nil {
		return err
	}
	tok := r.Header.Get("X-Subject-Token")
	w.Header().Set("X-Subject-Token", tok)
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"token": s.tokenBody(r, p)})
	return nil
}

func (s *Service) revokeToken(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	p, err := s.subject(r, c)
	if err != nil {
		return err
	}
	if err := s.revoke(r.Context(), p); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) authCatalog(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	if c.ProjectID == "" {
		return errs.E(errs.Forbidden, "You are not authorized to perform the requested action.")
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"catalog": catalogJSON(s.snap.Load(), c.ProjectID),
		"links": map[string]any{"self": s.links(r)["self"]}})
	return nil
}

func (s *Service) authProjects(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	snap := s.snap.Load()
	out := []map[string]any{}
	for _, p := range snap.userProjects(c.UserID) {
		if p.Enabled {
			out = append(out, s.projectJSON(p))
		}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"projects": out, "links": s.links(r)})
	return nil
}

func (s *Service) authDomains(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	api.WriteJSON(w, http.StatusOK, map[string]any{"domains": []any{}, "links": s.links(r)})
	return nil
}

func (s *Service) authSystem(w http.ResponseWriter, r *http.Request, c *auth.Caller) error {
	api.WriteJSON(w, http.StatusOK, map[string]any{"system": []any{}, "links": s.links(r)})
	return nil
}
