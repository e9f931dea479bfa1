// Package identity serves the Keystone v3 subset Ashlar's clients need and
// validates tokens for the image and volume APIs, either its own or those
// of an external Keystone.
package identity

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/service"
)

// DefaultDomainID is the id of the Default domain, as in Keystone.
const DefaultDomainID = "default"

// PollInterval is how often a running service checks whether another
// process changed the identity data.
const PollInterval = 2 * time.Second

// Service is the embedded Keystone.
type Service struct {
	cfg    *config.Config
	db     *db.DB
	logger *slog.Logger
	mux    *api.Mux
	// handler is mux behind fresh: the identity API reads its snapshot
	// after making sure it is current.
	handler http.Handler
	snap    atomic.Pointer[snapshot]
	// reloadMu serialises reloads so a slow one never replaces a newer one.
	reloadMu sync.Mutex
	// bcryptCost is bcrypt.DefaultCost; tests lower it.
	bcryptCost int
	now        func() time.Time
	// dummyHash is compared against when a user is unknown, so that an
	// unknown user and a wrong password take the same time.
	dummyHash []byte
}

// KeyPath is where releases before the keys moved into the database kept
// the token signing key, under the state path. A node that finds the
// database without keys imports it from there, so the tokens it signed
// stay valid.
func KeyPath(statePath string) string { return filepath.Join(statePath, "keys", "token.key") }

// New builds the embedded identity service: it makes sure the database has
// a token key, bootstraps the Default domain, roles, admin account and catalog when
// they are missing, writes openrc and clouds.yaml, and loads the data set.
func New(ctx context.Context, deps service.Deps) (*Service, error) {
	s, err := newService(ctx, deps.Config, deps.DB, deps.Logger, bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	res, err := s.Bootstrap(ctx, BootstrapOptions{})
	if err != nil {
		return nil, err
	}
	if err := s.WriteClientFiles(res.AdminPassword); err != nil {
		return nil, err
	}
	return s, nil
}

func newService(ctx context.Context, cfg *config.Config, d *db.DB, logger *slog.Logger, cost int) (*Service, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := ensureKey(ctx, d, KeyPath(cfg.Default.StatePath)); err != nil {
		return nil, fmt.Errorf("token keys: %w", err)
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte(uuid.NewString()), cost)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, db: d, logger: logger, mux: api.NewMux(),
		bcryptCost: cost, now: func() time.Time { return time.Now().UTC() }, dummyHash: dummy}
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	s.routes()
	s.handler = http.HandlerFunc(s.fresh)
	return s, nil
}

// fresh serves an identity API request from a current snapshot: one read
// of the generation stamp first, so that a client sees what it wrote
// through any node (a user created on one node logs in on the next). A
// database that cannot be read is left to the handler, whose own reads
// and writes report it.
func (s *Service) fresh(w http.ResponseWriter, r *http.Request) {
	if err := s.poll(r.Context()); err != nil && r.Context().Err() == nil {
		s.logger.Warn("identity: checking for changes", "err", err)
	}
	s.mux.ServeHTTP(w, r)
}

// Name implements service.Service.
func (s *Service) Name() string { return config.ServiceIdentity }

// Handler implements service.Service.
func (s *Service) Handler() http.Handler { return s.handler }

// Validator validates tokens issued by this service, from memory.
func (s *Service) Validator() auth.Validator { return validator{s} }

// Run polls for changes made by other processes sharing the database,
// and rotates the token keys when [identity] token_key_rotation says so.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if err := s.poll(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("identity: polling for changes", "err", err)
		}
		if err := s.rotateIfDue(ctx, s.cfg.Identity.TokenKeyRotation); err != nil && ctx.Err() == nil {
			s.logger.Warn("identity: rotating the token key", "err", err)
		}
	}
}

// poll reloads the snapshot when the generation in the database moved.
func (s *Service) poll(ctx context.Context) error {
	gen, err := readGeneration(ctx, s.db)
	if err != nil {
		return err
	}
	if gen == s.snap.Load().gen {
		return nil
	}
	return s.reload(ctx)
}

func (s *Service) reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	snap, err := loadSnapshot(ctx, s.db)
	if err != nil {
		return err
	}
	s.snap.Store(snap)
	return nil
}

// write runs fn in a transaction that also bumps the generation, then
// reloads the snapshot so this process sees its own write at once.
func (s *Service) write(ctx context.Context, fn func(tx *db.Tx) error) error {
	err := s.db.InTx(ctx, func(tx *db.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return bumpGeneration(ctx, tx, uuid.NewString())
	})
	if err != nil {
		return err
	}
	if err := s.reload(ctx); err != nil {
		return fmt.Errorf("reloading identity data: %w", err)
	}
	return nil
}

// newID returns a Keystone-style id: 32 lowercase hex digits.
func newID() string {
	u := uuid.New()
	const hex = "0123456789abcdef"
	b := make([]byte, 32)
	for i, c := range u {
		b[2*i], b[2*i+1] = hex[c>>4], hex[c&15]
	}
	return string(b)
}

type validator struct{ s *Service }

var errUnauthorized = errs.E(errs.Unauthorized, "The request you have made requires authentication.")

// Validate implements auth.Validator from the in-memory snapshot: the
// signature is checked with the keys, then expiry, revocation, the user's
// state and the roles. The database is read only to refuse a token: see
// check.
func (v validator) Validate(ctx context.Context, token string) (*auth.Caller, error) {
	_, c, err := v.s.check(ctx, token)
	return c, err
}

type callerBase struct {
	roles   []string
	catalog []auth.CatalogEntry
	c       auth.Caller
}

// check validates token and returns its payload and Caller. A token the
// snapshot cannot vouch for, though a newer one might (signed with a key,
// or naming a user, project or grant, made on another node since the last
// poll), is checked again after a poll.
func (s *Service) check(ctx context.Context, token string) (*payload, *auth.Caller, error) {
	snap := s.snap.Load()
	p, stale, err := s.verify(snap, token)
	if stale {
		if perr := s.poll(ctx); perr != nil {
			s.logger.Warn("identity: checking for changes", "err", perr)
		} else if now := s.snap.Load(); now != snap {
			snap = now
			p, _, err = s.verify(snap, token)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	k := [2]string{p.UserID, p.ProjectID}
	snap.callersMu.RLock()
	base := snap.callers[k]
	snap.callersMu.RUnlock()
	if base == nil {
		u := snap.users[p.UserID]
		base = &callerBase{c: auth.Caller{UserID: u.ID, UserName: u.Name, UserDomainID: u.DomainID}}
		if p.ProjectID != "" {
			pr := snap.projects[p.ProjectID]
			base.c.ProjectID, base.c.ProjectName, base.c.ProjectDomainID = pr.ID, pr.Name, pr.DomainID
			for _, r := range snap.effectiveRoles(u.ID, pr.ID) {
				base.roles = append(base.roles, r.Name)
			}
			base.catalog = snap.catalog(pr.ID)
		}
		snap.callersMu.Lock()
		snap.callers[k] = base
		snap.callersMu.Unlock()
	}
	c := base.c
	c.Roles = slices.Clone(base.roles)
	c.Catalog = base.catalog
	c.Token = token
	c.ExpiresAt = p.ExpiresAt
	return p, &c, nil
}

// verify opens token with snap's keys and checks that it is still good:
// not expired or revoked, its user enabled and unchanged since issue, its
// project enabled and the user still holding a role there. stale says a
// newer snapshot might judge otherwise (a refusal for want of a key, a
// user, a project or a grant); expiry and revocation are final.
func (s *Service) verify(snap *snapshot, token string) (p *payload, stale bool, err error) {
	if p, err = snap.keys.open(token, s.cfg.Identity.TokenExpiration); err != nil {
		return nil, true, errUnauthorized
	}
	if !s.now().Before(p.ExpiresAt) || snap.revoked[p.AuditID] || snap.revoked[p.ChainID] {
		return nil, false, errUnauthorized
	}
	u := snap.users[p.UserID]
	if u == nil || !u.Enabled || p.IssuedAt.Before(u.ValidAfter) {
		return nil, true, errUnauthorized
	}
	if d := snap.domains[u.DomainID]; d == nil || !d.Enabled {
		return nil, true, errUnauthorized
	}
	if p.ProjectID != "" {
		pr := snap.projects[p.ProjectID]
		if pr == nil || !pr.Enabled || len(snap.direct[[2]string{u.ID, pr.ID}]) == 0 {
			return nil, true, errUnauthorized
		}
	}
	return p, false, nil
}
