// Package image serves the Glance v2 API with multiple image stores.
package image

import (
	"context"
	"net/http"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/service"
)

// Service is the image API.
type Service struct {
	deps service.Deps
	mux  *api.Mux
}

// New builds the image service.
func New(ctx context.Context, deps service.Deps) (*Service, error) {
	s := &Service{deps: deps, mux: api.NewMux()}
	s.mux.HandleFunc("GET /{$}", s.versions)
	s.mux.HandleFunc("GET /versions", s.versions)
	return s, nil
}

// Name implements service.Service.
func (s *Service) Name() string { return config.ServiceImage }

// Handler implements service.Service.
func (s *Service) Handler() http.Handler { return s.mux }

// versionIDs are the Glance API versions served, newest first.
var versionIDs = []string{"v2.17", "v2.16", "v2.15", "v2.14", "v2.13", "v2.12", "v2.11", "v2.10", "v2.9", "v2.8",
	"v2.7", "v2.6", "v2.5", "v2.4", "v2.3", "v2.2", "v2.1", "v2.0"}

func (s *Service) versions(w http.ResponseWriter, r *http.Request) {
	vs := make([]map[string]any, 0, len(versionIDs))
	for i, id := range versionIDs {
		status := "SUPPORTED"
		if i == 0 {
			status = "CURRENT"
		}
		vs = append(vs, map[string]any{"id": id, "status": status,
			"links": []map[string]string{{"rel": "self", "href": s.deps.Config.Image.PublicURL + "/v2/"}}})
	}
	code := http.StatusMultipleChoices
	if r.URL.Path == "/versions" {
		code = http.StatusOK
	}
	api.WriteJSON(w, code, map[string]any{"versions": vs})
}
