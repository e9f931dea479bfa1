// Package service defines what the server needs from each API service
// (identity, image, volume) and what every service is given.
package service

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/task"
)

// Deps is what the server hands to every service constructor.
type Deps struct {
	Config *config.Config
	DB     *db.DB
	Logger *slog.Logger
	// Registry takes the service's own metrics.
	Registry prometheus.Registerer
	// Metrics are the shared HTTP metrics (used by api.Wrap).
	Metrics *api.Metrics
	// Validator validates tokens for the image and volume APIs. It is nil
	// for the identity service itself, which validates its own tokens.
	Validator auth.Validator
	// Tasks is the process's one task runner: services register the kinds
	// of background work they do with it, add and begin tasks on it; the
	// server runs it.
	Tasks *task.Runner
}

// Service is one API served on its own address.
type Service interface {
	// Name is "identity", "image" or "volume".
	Name() string
	// Handler serves the API; the server wraps it with api.Wrap.
	Handler() http.Handler
}

// Runner is implemented by services with background work (durable tasks,
// recovery after a crash). Run returns when ctx is cancelled, leaving the
// work in a state the next start resumes.
type Runner interface {
	Run(ctx context.Context) error
}
