// Package server wires the configured services together and runs them:
// one listener per service, shared metrics, graceful shutdown.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/api/loopback"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/dashboard"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/identity"
	"github.com/ashlar-dev/ashlar/internal/image"
	"github.com/ashlar-dev/ashlar/internal/image/store/drivers"
	"github.com/ashlar-dev/ashlar/internal/progress"
	"github.com/ashlar-dev/ashlar/internal/service"
	"github.com/ashlar-dev/ashlar/internal/task"
	"github.com/ashlar-dev/ashlar/internal/version"
	"github.com/ashlar-dev/ashlar/internal/volume"
)

// Server is a running set of services.
type Server struct {
	cfg      *config.Config
	db       *db.DB
	logger   *slog.Logger
	registry *prometheus.Registry
	services []bound
	tasks    *task.Runner
	// limit caps the connections per client over every listener.
	limit *connLimit
	// dashboard is the web UI, nil when [dashboard] bind is empty.
	dashboard http.Handler
}

type bound struct {
	svc     service.Service
	bind    string
	handler http.Handler
}

// OpenDB opens the configured database and brings its schema up to date:
// SQLite is migrated automatically; a PostgreSQL schema that is behind is
// refused with a message naming `ashlar db migrate`.
func OpenDB(ctx context.Context, cfg *config.Config) (*db.DB, error) {
	d, err := db.Open(ctx, cfg.Database.Connection)
	if err != nil {
		return nil, err
	}
	if d.Postgres() {
		err = d.CheckCurrent(ctx)
	} else {
		err = d.Migrate(ctx)
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// New opens the database and builds every enabled service.
func New(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*Server, error) {
	d, err := OpenDB(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := d.LockSingleNode(); err != nil {
		d.Close()
		return nil, err
	}
	s, err := newWithDB(ctx, cfg, d, logger)
	if err != nil {
		d.Close()
		return nil, err
	}
	return s, nil
}

func newWithDB(ctx context.Context, cfg *config.Config, d *db.DB, logger *slog.Logger) (*Server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// One task runner for the process. SQLite is locked to this process
	// (LockSingleNode), so leases left in it are a dead predecessor's.
	tasks := task.New(d, task.Options{Lease: cfg.Default.TaskLease, Workers: cfg.Default.TaskWorkers,
		Exclusive: !d.Postgres(), Logger: logger.With("component", "tasks"),
		Address: cfg.Default.SelfURL, Version: version.Version, Services: cfg.Default.EnabledServices})
	reg.MustRegister(progress.NewCollector(tasks.Held, cfg.Default.ProgressStallAfter))
	s := &Server{cfg: cfg, db: d, logger: logger, registry: reg, tasks: tasks,
		limit: newConnLimit(cfg.Default.MaxConnectionsPerClient, cfg.Default.ConnectionLimitExempt, logger, reg)}
	deps := service.Deps{Config: cfg, DB: d, Logger: logger, Registry: reg, Metrics: api.NewMetrics(reg), Tasks: tasks}
	logger.Info("node", "id", tasks.Node(), "address", tasks.Address())

	var validator auth.Validator
	if cfg.Enabled(config.ServiceIdentity) {
		idsvc, err := identity.New(ctx, deps)
		if err != nil {
			return nil, fmt.Errorf("identity: %w", err)
		}
		validator = idsvc.Validator()
		s.add(idsvc, cfg.Identity.Bind, deps, api.Keystone)
	} else if cfg.Identity.External() {
		validator = identity.NewExternalValidator(cfg.Identity, logger)
	} else {
		return nil, errors.New("identity is disabled and [identity] auth_url is not set: nothing can validate tokens")
	}
	deps.Validator = validator
	var volOpts volume.Options
	if cfg.Enabled(config.ServiceImage) {
		svc, err := image.New(ctx, deps, drivers.Factories())
		if err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
		img := s.add(svc, cfg.Image.Bind, deps, api.Glance)
		// The volume service reaches this image service in-process: the
		// same API, auth and middleware, without copying every uploaded
		// byte through a loopback socket.
		hosts := loopback.Hosts(cfg.Image.Bind, cfg.Image.PublicURL)
		volOpts.Via = func(next http.RoundTripper) http.RoundTripper {
			return &loopback.Transport{Hosts: hosts, Handler: img, Next: next}
		}
	}
	if cfg.Enabled(config.ServiceVolume) {
		svc, err := volume.NewWithOptions(ctx, deps, volOpts)
		if err != nil {
			return nil, fmt.Errorf("volume: %w", err)
		}
		s.add(svc, cfg.Volume.Bind, deps, api.Cinder)
	}
	if cfg.Dashboard.Bind != "" {
		dash, err := s.newDashboard()
		if err != nil {
			return nil, fmt.Errorf("dashboard: %w", err)
		}
		s.dashboard = dash.Handler()
	}
	return s, nil
}

// newDashboard builds the web UI as a client of this process's APIs,
// reached in-process, and of those it names elsewhere (external Keystone,
// a real Glance).
func (s *Server) newDashboard() (*dashboard.Dashboard, error) {
	cfg := s.cfg
	var rt http.RoundTripper = http.DefaultTransport
	urls := map[string]string{}
	for _, b := range s.services {
		var public string
		switch b.svc.Name() {
		case config.ServiceIdentity:
			public = cfg.Identity.PublicURL
		case config.ServiceImage:
			public = cfg.Image.PublicURL
		case config.ServiceVolume:
			public = cfg.Volume.PublicURL
		}
		urls[b.svc.Name()] = public
		rt = &loopback.Transport{Hosts: loopback.Hosts(b.bind, public), Handler: b.handler, Next: rt}
	}
	if urls[config.ServiceIdentity] == "" {
		urls[config.ServiceIdentity] = strings.TrimSuffix(strings.TrimRight(cfg.Identity.AuthURL, "/"), "/v3")
	}
	if urls[config.ServiceImage] == "" && len(cfg.Volume.GlanceAPIServers) > 0 {
		urls[config.ServiceImage] = cfg.Volume.GlanceAPIServers[0]
	}
	return dashboard.New(dashboard.Options{DB: s.db, Client: &http.Client{Transport: rt, Timeout: 2 * time.Minute},
		IdentityURL: urls[config.ServiceIdentity], ImageURL: urls[config.ServiceImage], VolumeURL: urls[config.ServiceVolume],
		SessionTTL: cfg.Dashboard.SessionTTL, StallAfter: cfg.Default.ProgressStallAfter,
		Domain: cfg.Identity.UserDomainName, Logger: s.logger.With("component", "dashboard")})
}

// DashboardHandler returns the web UI's handler (nil when disabled), for
// tests.
func (s *Server) DashboardHandler() http.Handler { return s.dashboard }

// add registers svc to be served on bind and returns its wrapped handler.
func (s *Server) add(svc service.Service, bind string, deps service.Deps, flavor api.Flavor) http.Handler {
	h := api.Wrap(svc.Name(), svc.Handler(), deps.Logger.With("service", svc.Name()), deps.Metrics, flavor,
		api.BodyTimeout(s.cfg.Default.ClientBodyTimeout))
	s.services = append(s.services, bound{svc: svc, bind: bind, handler: h})
	return h
}

// Handler returns the wrapped handler of the named service, for tests.
func (s *Server) Handler(name string) http.Handler {
	for _, b := range s.services {
		if b.svc.Name() == name {
			return b.handler
		}
	}
	return nil
}

// MetricsHandler serves the Prometheus registry.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})
}

// DB returns the server's database.
func (s *Server) DB() *db.DB { return s.db }

// Close releases the database.
func (s *Server) Close() error { return s.db.Close() }

// ShutdownTimeout bounds how long in-flight requests may take to finish.
const ShutdownTimeout = 30 * time.Second

// Run listens on every service's address (and the metrics address) and
// serves until ctx is cancelled, then lets in-flight requests finish and
// stops background work. ready, when non-nil, is called once all listeners
// are open.
func (s *Server) Run(ctx context.Context, ready func()) error {
	type lis struct {
		name string
		l    net.Listener
		h    http.Handler
	}
	var ls []lis
	closeAll := func() {
		for _, x := range ls {
			x.l.Close()
		}
	}
	for _, b := range s.services {
		l, err := net.Listen("tcp", b.bind)
		if err != nil {
			closeAll()
			return fmt.Errorf("%s: listening on %s: %w", b.svc.Name(), b.bind, err)
		}
		ls = append(ls, lis{b.svc.Name(), l, b.handler})
	}
	if s.cfg.Default.MetricsBind != "" {
		l, err := net.Listen("tcp", s.cfg.Default.MetricsBind)
		if err != nil {
			closeAll()
			return fmt.Errorf("metrics: listening on %s: %w", s.cfg.Default.MetricsBind, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", s.MetricsHandler())
		ls = append(ls, lis{"metrics", l, mux})
	}
	if s.dashboard != nil {
		l, err := net.Listen("tcp", s.cfg.Dashboard.Bind)
		if err != nil {
			closeAll()
			return fmt.Errorf("dashboard: listening on %s: %w", s.cfg.Dashboard.Bind, err)
		}
		ls = append(ls, lis{"dashboard", l, s.dashboard})
	}

	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.tasks.Run(bgCtx); err != nil && !errors.Is(err, context.Canceled) {
			s.logger.Error("task runner stopped", "err", err)
		}
	})
	for _, b := range s.services {
		if r, ok := b.svc.(service.Runner); ok {
			wg.Go(func() {
				if err := r.Run(bgCtx); err != nil && !errors.Is(err, context.Canceled) {
					s.logger.Error("background work stopped", "service", b.svc.Name(), "err", err)
				}
			})
		}
	}

	errc := make(chan error, len(ls))
	var servers []*http.Server
	for _, x := range ls {
		// No ReadTimeout or WriteTimeout: they would cut image transfers
		// of any length. A body's deadline is set per request (api.Wrap);
		// headers and idle keep-alive connections have their own.
		hs := &http.Server{Handler: x.h,
			ReadHeaderTimeout: s.cfg.Default.ClientHeaderTimeout,
			IdleTimeout:       s.cfg.Default.ClientSocketTimeout,
			BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
		servers = append(servers, hs)
		s.logger.Info("listening", "service", x.name, "addr", x.l.Addr().String())
		go func() {
			if err := hs.Serve(s.limit.wrap(x.l)); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s: %w", x.name, err)
			}
		}()
	}
	if ready != nil {
		ready()
	}
	var runErr error
	select {
	case <-ctx.Done():
		s.logger.Info("shutting down: letting in-flight requests finish")
	case runErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	var swg sync.WaitGroup
	for _, hs := range servers {
		swg.Go(func() { _ = hs.Shutdown(sctx) })
	}
	swg.Wait()
	stopBackground()
	wg.Wait()
	return runErr
}
