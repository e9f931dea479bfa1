// Package volume serves the Cinder v3 API, with uploads to image landing in
// the image store named by the volume type.
package volume

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/glanceclient"
	"github.com/ashlar-dev/ashlar/internal/service"
	"github.com/ashlar-dev/ashlar/internal/task"
	"github.com/ashlar-dev/ashlar/internal/volume/backup"
	backupdrivers "github.com/ashlar-dev/ashlar/internal/volume/backup/drivers"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
	"github.com/ashlar-dev/ashlar/internal/volume/driver/drivers"
)

// Microversion bounds served.
const (
	MinVersion = "3.0"
	MaxVersion = "3.70"
)

// httpGlance returns a builder of HTTP image clients whose requests go
// through via (when not nil). An endpoint that is no usable URL is an
// errs.Invalid error, reported where the image service is needed.
func httpGlance(via func(http.RoundTripper) http.RoundTripper) func(endpoint string) (glanceclient.Client, error) {
	return func(endpoint string) (glanceclient.Client, error) {
		c, err := glanceclient.New(endpoint, nil)
		if err != nil {
			return nil, err
		}
		if via != nil {
			return c.Via(via), nil
		}
		return c, nil
	}
}

// Options replaces the parts New builds from the configuration; tests use
// it to run the service on drivers and image endpoints of their own.
type Options struct {
	// Drivers maps backend names ([volume] enabled_backends) to drivers.
	Drivers map[string]driver.Driver
	// Glance builds the image client for an endpoint.
	Glance func(endpoint string) (glanceclient.Client, error)
	// Via wraps the transport of the HTTP image clients built when Glance
	// is nil: the server routes requests for its own image service through
	// it in-process (internal/api/loopback).
	Via func(http.RoundTripper) http.RoundTripper
	// Backup is the backup engine ([backup] builds it when nil).
	Backup *backup.Engine
}

// Service is the block storage API.
type Service struct {
	deps     service.Deps
	mux      *api.Mux
	handler  http.Handler
	backends []*backend
	// hostname is the host part of os-vol-host-attr:host.
	hostname string
	glance   func(endpoint string) (glanceclient.Client, error)

	// tasks runs the service's background work; ownTasks when the
	// service made it itself (no shared runner in Deps) and runs it.
	tasks    *task.Runner
	ownTasks bool

	// backups makes and restores backups; nil when no backup driver is
	// configured (the backups API then answers 503, as Cinder without a
	// backup service).
	backups *backup.Engine
}

// backend is one configured volume backend.
type backend struct {
	cfg config.Backend
	drv driver.Driver
	az  string
}

// New builds the volume service from the configuration.
func New(ctx context.Context, deps service.Deps) (*Service, error) {
	return NewWithOptions(ctx, deps, Options{})
}

// NewWithOptions builds the volume service; zero Options fields are built
// from the configuration.
func NewWithOptions(ctx context.Context, deps service.Deps, opts Options) (*Service, error) {
	s := &Service{deps: deps, mux: api.NewMux(), hostname: "ashlar", tasks: deps.Tasks}
	if s.tasks == nil {
		s.tasks, s.ownTasks = task.New(deps.DB, task.Options{Lease: deps.Config.Default.TaskLease, Poll: ownRunnerPoll,
			Exclusive: !deps.DB.Postgres(), Logger: deps.Logger}), true
	}
	s.registerWork(s.tasks)
	if h, err := os.Hostname(); err == nil && h != "" {
		s.hostname = h
	}
	s.backups = opts.Backup
	if s.backups == nil && deps.Config.Backup.Driver != "" {
		var err error
		if s.backups, err = backupdrivers.New(deps.Config.Backup); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
	}
	s.glance = opts.Glance
	if s.glance == nil {
		s.glance = httpGlance(opts.Via)
	}
	for _, b := range deps.Config.Backends {
		drv := opts.Drivers[b.Name]
		if drv == nil {
			if opts.Drivers != nil {
				continue
			}
			var err error
			if drv, err = drivers.New(b); err != nil {
				return nil, fmt.Errorf("backend %s: %w", b.Name, err)
			}
		}
		az := b.Options["availability_zone"]
		if az == "" {
			az = deps.Config.Volume.DefaultAvailabilityZone
		}
		s.backends = append(s.backends, &backend{cfg: b, drv: drv, az: az})
	}
	if err := s.ensureDefaultType(ctx); err != nil {
		return nil, fmt.Errorf("default volume type: %w", err)
	}
	s.routes()
	s.handler = s.middleware(s.mux)
	return s, nil
}

// Name implements service.Service.
func (s *Service) Name() string { return config.ServiceVolume }

// Handler implements service.Service.
func (s *Service) Handler() http.Handler { return s.handler }

func (s *Service) versionDoc() map[string]any {
	return map[string]any{"versions": []any{map[string]any{
		"id": "v3.0", "status": "CURRENT", "version": MaxVersion, "min_version": MinVersion,
		"updated": "2022-08-31T00:00:00Z",
		"links": []map[string]string{
			{"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
			{"rel": "self", "href": strings.TrimRight(s.deps.Config.Volume.PublicURL, "/") + "/v3/"}},
		"media-types": []map[string]string{{"base": "application/json",
			"type": "application/vnd.openstack.volume+json;version=3"}},
	}}}
}

func (s *Service) versions(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("OpenStack-API-Version", "volume "+MinVersion)
	return reply(w, http.StatusMultipleChoices, s.versionDoc())
}

func (s *Service) versionV3(w http.ResponseWriter, r *http.Request) error {
	return reply(w, http.StatusOK, s.versionDoc())
}
