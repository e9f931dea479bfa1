package identity

import (
	"context"
	"net/http"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/policy"
)

// identityPolicy is who may call the admin API, after Keystone's defaults
// with enforce_scope off: admins manage everything; users may read
// themselves and the projects they are scoped to.
var identityPolicy = policy.Table{
	"identity:list_domains":          policy.Admin,
	"identity:get_domain":            policy.Admin,
	"identity:list_projects":         policy.Admin,
	"identity:get_project":           policy.Reader,
	"identity:create_project":        policy.Admin,
	"identity:update_project":        policy.Admin,
	"identity:delete_project":        policy.Admin,
	"identity:list_users":            policy.Admin,
	"identity:get_user":              policy.Admin, // users may also read themselves
	"identity:create_user":           policy.Admin,
	"identity:update_user":           policy.Admin,
	"identity:delete_user":           policy.Admin,
	"identity:list_roles":            policy.Admin,
	"identity:get_role":              policy.Admin,
	"identity:create_role":           policy.Admin,
	"identity:update_role":           policy.Admin,
	"identity:delete_role":           policy.Admin,
	"identity:list_grants":           policy.Admin,
	"identity:check_grant":           policy.Admin,
	"identity:create_grant":          policy.Admin,
	"identity:revoke_grant":          policy.Admin,
	"identity:list_role_assignments": policy.Admin,
	"identity:list_services":         policy.Admin,
	"identity:get_service":           policy.Admin,
	"identity:create_service":        policy.Admin,
	"identity:update_service":        policy.Admin,
	"identity:delete_service":        policy.Admin,
	"identity:list_endpoints":        policy.Admin,
	"identity:get_endpoint":          policy.Admin,
	"identity:create_endpoint":       policy.Admin,
	"identity:update_endpoint":       policy.Admin,
	"identity:delete_endpoint":       policy.Admin,
	"identity:list_regions":          policy.Anyone,
}

func forbidden(action string) error {
	return errs.E(errs.Forbidden, "You are not authorized to perform the requested action: %s.", action)
}

// allow enforces identityPolicy with Keystone's 403 message.
func allow(c *auth.Caller, action string, t policy.Target) error {
	if !identityPolicy.Allowed(c, action, t) {
		return forbidden(action)
	}
	return nil
}

// writeError renders err as Keystone does; a 401 names where to authenticate.
func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if errs.KindOf(err) == errs.Unauthorized {
		w.Header().Set("WWW-Authenticate", `Keystone uri="`+s.base()+`"`)
	}
	api.WriteError(w, r, api.Keystone, err)
}

type authedFunc func(w http.ResponseWriter, r *http.Request, c *auth.Caller) error

// authed requires a valid X-Auth-Token and renders the handler's error.
func (s *Service) authed(h authedFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("X-Auth-Token")
		if tok == "" {
			s.writeError(w, r, errUnauthorized)
			return
		}
		_, c, err := s.check(r.Context(), tok)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := h(w, r.WithContext(auth.WithCaller(r.Context(), c)), c); err != nil {
			s.writeError(w, r, err)
		}
	}
}

// unauthed renders the error of a handler that needs no token.
func (s *Service) unauthed(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	}
}

// serveCollection routes /v3/<plural> to the generic handlers of k: list
// and show always, create, update and delete when k can write.
func serveCollection[T entity](s *Service, k *collection[T]) {
	base := "/v3/" + k.plural
	s.mux.HandleFunc("GET "+base, s.authed(k.list(s)))
	s.mux.HandleFunc("GET "+base+"/{id}", s.authed(k.show(s)))
	if k.build == nil {
		return
	}
	s.mux.HandleFunc("POST "+base, s.authed(k.create(s)))
	s.mux.HandleFunc("PATCH "+base+"/{id}", s.authed(k.patch(s)))
	s.mux.HandleFunc("DELETE "+base+"/{id}", s.authed(k.delete(s)))
}

func (s *Service) routes() {
	m := s.mux
	m.HandleFunc("GET /{$}", s.versions)
	m.HandleFunc("GET /v3/{$}", s.version)
	m.HandleFunc("GET /v3", s.version)

	m.HandleFunc("POST /v3/auth/tokens", s.issueToken)
	m.HandleFunc("GET /v3/auth/tokens", s.authed(s.validateToken)) // HEAD too
	m.HandleFunc("DELETE /v3/auth/tokens", s.authed(s.revokeToken))
	m.HandleFunc("GET /v3/auth/catalog", s.authed(s.authCatalog))
	m.HandleFunc("GET /v3/auth/projects", s.authed(s.authProjects))
	m.HandleFunc("GET /v3/auth/domains", s.authed(s.authDomains))
	m.HandleFunc("GET /v3/auth/system", s.authed(s.authSystem))

	serveCollection(s, domains)
	m.HandleFunc("GET /v3/regions", s.authed(s.listRegions))
	m.HandleFunc("GET /v3/regions/{id}", s.authed(s.getRegion))

	serveCollection(s, projects)
	serveCollection(s, users)
	m.HandleFunc("POST /v3/users/{id}/password", s.unauthed(s.changePassword))
	m.HandleFunc("GET /v3/users/{id}/projects", s.authed(s.listUserProjects))
	serveCollection(s, roles)
	m.HandleFunc("GET /v3/projects/{pid}/users/{uid}/roles", s.authed(s.listGrants))
	m.HandleFunc("GET /v3/projects/{pid}/users/{uid}/roles/{rid}", s.authed(s.grant("identity:check_grant", true, nil))) // HEAD too
	m.HandleFunc("PUT /v3/projects/{pid}/users/{uid}/roles/{rid}", s.authed(s.grant("identity:create_grant", false, insertGrant)))
	m.HandleFunc("DELETE /v3/projects/{pid}/users/{uid}/roles/{rid}", s.authed(s.grant("identity:revoke_grant", true, deleteGrant)))
	m.HandleFunc("GET /v3/role_assignments", s.authed(s.listAssignments))

	serveCollection(s, services)
	serveCollection(s, endpoints)
}

func (s *Service) base() string { return strings.TrimRight(s.cfg.Identity.PublicURL, "/") + "/v3" }

// links is the collection "links" member of Keystone list responses.
func (s *Service) links(r *http.Request) map[string]any {
	self := s.base() + strings.TrimPrefix(r.URL.Path, "/v3")
	if r.URL.RawQuery != "" {
		self += "?" + r.URL.RawQuery
	}
	return map[string]any{"self": self, "previous": nil, "next": nil}
}

func (s *Service) v3() map[string]any {
	return map[string]any{
		"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
		"links":       []map[string]string{{"rel": "self", "href": s.base() + "/"}},
		"media-types": []map[string]string{{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}},
	}
}

func (s *Service) versions(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, http.StatusMultipleChoices, map[string]any{"versions": map[string]any{"values": []any{s.v3()}}})
}

func (s *Service) version(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, http.StatusOK, map[string]any{"version": s.v3()})
}

// revoke records p's audit id until p would have expired, and drops
// revocations that no longer matter.
func (s *Service) revoke(ctx context.Context, p *payload) error {
	return s.write(ctx, func(tx *db.Tx) error {
		return insertRevocation(ctx, tx, encodeAudit(p.AuditID), p.ExpiresAt)
	})
}
