package identity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// maxCached bounds the external validator's token cache.
const maxCached = 10000

// External validates tokens against a real Keystone the way
// keystonemiddleware does: GET /v3/auth/tokens with a service token of its
// own, results cached until the token expires or cache_ttl passes.
type External struct {
	cfg    config.Identity
	base   string // ".../v3"
	client *http.Client
	logger *slog.Logger
	now    func() time.Time

	mu    sync.Mutex // guards cache and inflight
	cache map[[sha256.Size]byte]cached
	// inflight joins concurrent validations of one token into one request.
	inflight map[[sha256.Size]byte]*flight

	svcMu      sync.Mutex // guards the service token; held while renewing it
	svcToken   string
	svcExpires time.Time
}

type flight struct {
	done chan struct{}
	c    *auth.Caller
	err  error
}

type cached struct {
	c     *auth.Caller
	until time.Time
}

// NewExternalValidator returns a Validator that asks an external Keystone.
func NewExternalValidator(cfg config.Identity, logger *slog.Logger) auth.Validator {
	return NewExternal(cfg, logger, nil)
}

// NewExternal is NewExternalValidator with a chosen HTTP client (nil for a
// default one with a timeout).
func NewExternal(cfg config.Identity, logger *slog.Logger, client *http.Client) *External {
	if logger == nil {
		logger = slog.Default()
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	base := strings.TrimRight(cfg.AuthURL, "/")
	if !strings.HasSuffix(base, "/v3") {
		base += "/v3"
	}
	return &External{cfg: cfg, base: base, client: client, logger: logger,
		now: time.Now, cache: map[[sha256.Size]byte]cached{}, inflight: map[[sha256.Size]byte]*flight{}}
}

// Validate implements auth.Validator.
func (e *External) Validate(ctx context.Context, token string) (*auth.Caller, error) {
	if token == "" || len(token) > 8192 {
		return nil, errUnauthorized
	}
	key := sha256.Sum256([]byte(token))
	now := e.now()
	e.mu.Lock()
	hit, ok := e.cache[key]
	if ok && now.Before(hit.until) {
		e.mu.Unlock()
		return cloneCaller(hit.c, token), nil
	}
	if f := e.inflight[key]; f != nil {
		e.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if f.err != nil {
			return nil, f.err
		}
		return cloneCaller(f.c, token), nil
	}
	f := &flight{done: make(chan struct{})}
	e.inflight[key] = f
	e.mu.Unlock()

	// The request is not tied to this caller's context alone: others may
	// be waiting on it.
	f.c, f.err = e.fetch(context.WithoutCancel(ctx), token, false)
	e.mu.Lock()
	delete(e.inflight, key)
	if f.err == nil {
		e.store(key, f.c, now)
	}
	e.mu.Unlock()
	close(f.done)
	if f.err != nil {
		return nil, f.err
	}
	return cloneCaller(f.c, token), nil
}

// store caches c until its expiry or the TTL; e.mu is held.
func (e *External) store(key [sha256.Size]byte, c *auth.Caller, now time.Time) {
	until := now.Add(e.cfg.CacheTTL)
	if c.ExpiresAt.Before(until) {
		until = c.ExpiresAt
	}
	if len(e.cache) >= maxCached {
		for k, v := range e.cache {
			if !now.Before(v.until) {
				delete(e.cache, k)
			}
		}
		if len(e.cache) >= maxCached {
			clear(e.cache)
		}
	}
	e.cache[key] = cached{c: c, until: until}
}

func cloneCaller(c *auth.Caller, token string) *auth.Caller {
	cp := *c
	cp.Roles = slices.Clone(c.Roles)
	cp.Token = token
	return &cp
}

// fetch asks Keystone about token. A 401 may mean that our own service
// token expired early (revoked, Keystone restarted with new keys): it is
// renewed once before giving up.
func (e *External) fetch(ctx context.Context, token string, retried bool) (*auth.Caller, error) {
	svc, err := e.serviceToken(ctx, retried)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/auth/tokens", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Auth-Token", svc)
	req.Header.Set("X-Subject-Token", token)
	req.Header.Set("Accept", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "The identity service is unavailable.")
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "The identity service is unavailable.")
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusUnauthorized && !retried:
		return e.fetch(ctx, token, true)
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusUnauthorized:
		return nil, errUnauthorized
	default:
		return nil, errs.Wrap(errs.Unavailable, fmt.Errorf("keystone answered %d validating a token: %.200s", resp.StatusCode, body),
			"The identity service is unavailable.")
	}
	var tb struct {
		Token keystoneToken `json:"token"`
	}
	if err := json.Unmarshal(body, &tb); err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "The identity service returned an unreadable token.")
	}
	return tb.Token.caller()
}

// keystoneToken is the part of Keystone's token body Ashlar uses.
type keystoneToken struct {
	ExpiresAt string `json:"expires_at"`
	User      struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Domain struct {
			ID string `json:"id"`
		} `json:"domain"`
	} `json:"user"`
	Project *struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Domain struct {
			ID string `json:"id"`
		} `json:"domain"`
	} `json:"project"`
	Roles []struct {
		Name string `json:"name"`
	} `json:"roles"`
	Catalog []struct {
		Type      string `json:"type"`
		Name      string `json:"name"`
		Endpoints []struct {
			Interface string `json:"interface"`
			Region    string `json:"region"`
			RegionID  string `json:"region_id"`
			URL       string `json:"url"`
		} `json:"endpoints"`
	} `json:"catalog"`
}

func (t *keystoneToken) caller() (*auth.Caller, error) {
	exp, err := time.Parse(time.RFC3339Nano, t.ExpiresAt)
	if err != nil || t.User.ID == "" {
		return nil, errs.E(errs.Unavailable, "The identity service returned an unreadable token.")
	}
	c := &auth.Caller{UserID: t.User.ID, UserName: t.User.Name, UserDomainID: t.User.Domain.ID, ExpiresAt: exp}
	if t.Project != nil {
		c.ProjectID, c.ProjectName, c.ProjectDomainID = t.Project.ID, t.Project.Name, t.Project.Domain.ID
	}
	for _, r := range t.Roles {
		c.Roles = append(c.Roles, r.Name)
	}
	for _, s := range t.Catalog {
		ce := auth.CatalogEntry{Type: s.Type, Name: s.Name}
		for _, ep := range s.Endpoints {
			region := ep.RegionID
			if region == "" {
				region = ep.Region
			}
			ce.Endpoints = append(ce.Endpoints, auth.Endpoint{Interface: ep.Interface, Region: region, URL: ep.URL})
		}
		c.Catalog = append(c.Catalog, ce)
	}
	return c, nil
}

// serviceToken returns Ashlar's own token, authenticating with the
// configured service credentials when there is none, it is about to
// expire, or renew is set.
func (e *External) serviceToken(ctx context.Context, renew bool) (string, error) {
	e.svcMu.Lock()
	defer e.svcMu.Unlock()
	if !renew && e.svcToken != "" && e.now().Add(time.Minute).Before(e.svcExpires) {
		return e.svcToken, nil
	}
	body := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
			"name": e.cfg.Username, "password": e.cfg.Password, "domain": map[string]any{"name": e.cfg.UserDomainName}}}},
		"scope": map[string]any{"project": map[string]any{"name": e.cfg.ProjectName,
			"domain": map[string]any{"name": e.cfg.ProjectDomainName}}},
	}}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+"/auth/tokens?nocatalog", bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return "", errs.Wrap(errs.Unavailable, err, "The identity service is unavailable.")
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		e.logger.Error("external keystone: service authentication failed", "status", resp.StatusCode, "user", e.cfg.Username)
		return "", errs.Wrap(errs.Unavailable, fmt.Errorf("service authentication: keystone answered %d: %.200s", resp.StatusCode, rb),
			"The identity service is unavailable.")
	}
	var tb struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
		} `json:"token"`
	}
	if err := json.Unmarshal(rb, &tb); err != nil {
		return "", errs.Wrap(errs.Unavailable, err, "The identity service returned an unreadable token.")
	}
	exp, err := time.Parse(time.RFC3339Nano, tb.Token.ExpiresAt)
	if err != nil {
		return "", errs.Wrap(errs.Unavailable, err, "The identity service returned an unreadable token.")
	}
	e.svcToken, e.svcExpires = resp.Header.Get("X-Subject-Token"), exp
	return e.svcToken, nil
}
