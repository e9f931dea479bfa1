package volume

import (
	"context"
	"net/http"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/glanceclient"
)

// glanceFor returns the image client for the request: [volume]
// glance_api_servers when set, else the caller's catalog entry "image".
func (s *Service) glanceFor(r *http.Request) (glanceclient.Client, error) {
	return s.glanceForCaller(caller(r).EndpointURL("image", "public"))
}

// glanceForCaller is glanceFor for background work, which recorded the
// caller's catalog URL.
func (s *Service) glanceForCaller(catalogURL string) (glanceclient.Client, error) {
	endpoint := catalogURL
	if servers := s.deps.Config.Volume.GlanceAPIServers; len(servers) > 0 {
		endpoint = servers[0]
	}
	if endpoint == "" {
		return nil, errs.E(errs.Unavailable, "No image service endpoint: set [volume] glance_api_servers or add an image endpoint to the catalog.")
	}
	if s.glance == nil {
		return nil, errs.E(errs.Unavailable, "No image service client is available.")
	}
	return s.glance(endpoint)
}

// imageServiceError turns an image client error without a kind (the
// service unreachable, an unexpected answer) into Unavailable.
func imageServiceError(err error) error {
	if errs.KindOf(err) == errs.Other {
		return errs.Wrap(errs.Unavailable, err, "The image service is unavailable.")
	}
	return err
}

// validateStore checks a store id against the image service's stores, as
// Cinder's validate_stores_id does: unknown -> 404, read-only -> 400.
func (s *Service) validateStore(r *http.Request, id string) error {
	gc, err := s.glanceFor(r)
	if err != nil {
		return err
	}
	return checkStore(r.Context(), gc, caller(r).Token, id)
}

func checkStore(ctx context.Context, gc glanceclient.Client, token, id string) error {
	stores, err := gc.Stores(ctx, token)
	if errs.KindOf(err) == errs.NotFound {
		return errs.E(errs.NotFound, "Resource could not be found.")
	}
	if err != nil {
		return imageServiceError(err)
	}
	for _, st := range stores {
		if st.ID == id {
			if st.ReadOnly {
				return errs.E(errs.Invalid, "Store %s is read-only in glance.", id)
			}
			return nil
		}
	}
	return errs.E(errs.NotFound, "Store %s not enabled in glance.", id)
}
