// Package auth carries who is calling through a request: the Caller taken
// from a validated token, the Validator interface that identity backends
// (embedded or external Keystone) implement, and the middleware that
// requires a token on the image and volume APIs.
package auth

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Role names. Keystone's default implied roles: admin implies member,
// member implies reader.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
	RoleReader = "reader"
)

// Caller is the identity behind a request's token.
type Caller struct {
	UserID, UserName, UserDomainID          string
	ProjectID, ProjectName, ProjectDomainID string
	// Roles are the role names on the scoped project, implied roles included.
	Roles []string
	// Token is the raw token, for calls made on the caller's behalf.
	Token     string
	ExpiresAt time.Time
	// Service is the catalog of the token, when the validator knows it.
	Catalog []CatalogEntry
}

// CatalogEntry is one service of a token's catalog.
type CatalogEntry struct {
	Type, Name string
	Endpoints  []Endpoint
}

// Endpoint is one URL of a catalog entry.
type Endpoint struct {
	Interface, Region, URL string
}

// HasRole reports whether the caller holds role, directly or by implication.
func (c *Caller) HasRole(role string) bool {
	if c == nil {
		return false
	}
	for _, r := range c.Roles {
		if r == role || r == RoleAdmin && (role == RoleMember || role == RoleReader) ||
			r == RoleMember && role == RoleReader {
			return true
		}
	}
	return false
}

// IsAdmin reports whether the caller has the admin role.
func (c *Caller) IsAdmin() bool { return c.HasRole(RoleAdmin) }

// EndpointURL returns the URL of the first catalog entry of serviceType
// with the given interface ("public" when empty), or "".
func (c *Caller) EndpointURL(serviceType, iface string) string {
	if iface == "" {
		iface = "public"
	}
	for _, e := range c.Catalog {
		if e.Type != serviceType {
			continue
		}
		for _, ep := range e.Endpoints {
			if ep.Interface == iface {
				return ep.URL
			}
		}
	}
	return ""
}

// Validator turns a token into a Caller. It returns an errs.Unauthorized
// error for a token that is unknown, expired or revoked.
type Validator interface {
	Validate(ctx context.Context, token string) (*Caller, error)
}

type ctxKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the caller of the request, or nil when unauthenticated.
func FromContext(ctx context.Context) *Caller {
	c, _ := ctx.Value(ctxKey{}).(*Caller)
	return c
}

// Require returns middleware that validates X-Auth-Token with v and puts the
// Caller in the request context. Requests for which public returns true pass
// without a token (version documents, health checks). Failures are rendered
// by fail, in the wrapped API's own error dialect.
func Require(v Validator, public func(r *http.Request) bool, fail func(w http.ResponseWriter, r *http.Request, err error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if public != nil && public(r) {
				next.ServeHTTP(w, r)
				return
			}
			token := r.Header.Get("X-Auth-Token")
			if token == "" {
				fail(w, r, errs.E(errs.Unauthorized, "The request you have made requires authentication."))
				return
			}
			c, err := v.Validate(r.Context(), token)
			if err != nil {
				if errs.KindOf(err) == errs.Other {
					err = errs.Wrap(errs.Unavailable, err, "The identity service is unavailable.")
				}
				fail(w, r, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), c)))
		})
	}
}

// Static is a Validator with a fixed token table, for tests and for
// handler-level checks that need no identity service.
type Static map[string]*Caller

// Validate implements Validator.
func (s Static) Validate(_ context.Context, token string) (*Caller, error) {
	c, ok := s[token]
	if !ok {
		return nil, errs.E(errs.Unauthorized, "The request you have made requires authentication.")
	}
	cp := *c
	cp.Roles = slices.Clone(c.Roles)
	cp.Token = token
	return &cp, nil
}

var _ Validator = Static(nil)
