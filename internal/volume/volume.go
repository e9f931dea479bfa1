// Package volume serves the Cinder v3 API, with uploads to image landing in
// the image store named by the volume type.
package volume

import (
	"context"
	"net/http"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/service"
)

// Microversion bounds served.
const (
	MinVersion = "3.0"
	MaxVersion = "3.70"
)

// Service is the block storage API.
type Service struct {
	deps service.Deps
	mux  *api.Mux
}

// New builds the volume service.
func New(ctx context.Context, deps service.Deps) (*Service, error) {
	s := &Service{deps: deps, mux: api.NewMux()}
	s.mux.HandleFunc("GET /{$}", s.versions)
	return s, nil
}

// Name implements service.Service.
func (s *Service) Name() string { return config.ServiceVolume }

// Handler implements service.Service.
func (s *Service) Handler() http.Handler { return s.mux }

func (s *Service) versions(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("OpenStack-API-Version", "volume "+MinVersion)
	api.WriteJSON(w, http.StatusMultipleChoices, map[string]any{"versions": []any{map[string]any{
		"id": "v3.0", "status": "CURRENT", "version": MaxVersion, "min_version": MinVersion,
		"updated": "2022-08-31T00:00:00Z",
		"links": []map[string]string{
			{"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
			{"rel": "self", "href": s.deps.Config.Volume.PublicURL + "/v3/"}},
		"media-types": []map[string]string{{"base": "application/json",
			"type": "application/vnd.openstack.volume+json;version=3"}},
	}}})
}
