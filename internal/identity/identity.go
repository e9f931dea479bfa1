// Package identity serves the Keystone v3 subset Ashlar's clients need and
// validates tokens for the image and volume APIs, either its own or those
// of an external Keystone.
package identity

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/service"
)

// Service is the embedded Keystone.
type Service struct {
	deps service.Deps
	mux  *api.Mux
}

// New builds the embedded identity service.
func New(ctx context.Context, deps service.Deps) (*Service, error) {
	s := &Service{deps: deps, mux: api.NewMux()}
	s.routes()
	return s, nil
}

// Name implements service.Service.
func (s *Service) Name() string { return config.ServiceIdentity }

// Handler implements service.Service.
func (s *Service) Handler() http.Handler { return s.mux }

// Validator validates tokens issued by this service.
func (s *Service) Validator() auth.Validator { return auth.Static{} }

func (s *Service) routes() {
	s.mux.HandleFunc("GET /{$}", s.versions)
	s.mux.HandleFunc("GET /v3/{$}", s.version)
	s.mux.HandleFunc("GET /v3", s.version)
}

func (s *Service) v3() map[string]any {
	return map[string]any{
		"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
		"links":       []map[string]string{{"rel": "self", "href": s.deps.Config.Identity.PublicURL + "/v3/"}},
		"media-types": []map[string]string{{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}},
	}
}

func (s *Service) versions(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, http.StatusMultipleChoices, map[string]any{"versions": map[string]any{"values": []any{s.v3()}}})
}

func (s *Service) version(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, http.StatusOK, map[string]any{"version": s.v3()})
}

// NewExternalValidator returns a Validator that asks an external Keystone.
func NewExternalValidator(cfg config.Identity, logger *slog.Logger) auth.Validator {
	return external{}
}

type external struct{}

func (external) Validate(ctx context.Context, token string) (*auth.Caller, error) {
	return nil, errs.E(errs.Unavailable, "external Keystone validation is not implemented yet")
}
