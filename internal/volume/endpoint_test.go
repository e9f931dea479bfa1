package volume

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/service"
)

// An image endpoint that is no usable URL (here the token catalog's) is
// the client's error wherever the image service is needed; a rejected
// upload leaves the volume as it was.
func TestUnusableImageEndpoint(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		dir := t.TempDir()
		cfg, err := config.Parse(`
[volume]
enabled_backends = local
[backend:local]
volumes_dir = `+filepath.Join(dir, "vols")+`
`, dir)
		if err != nil {
			t.Fatal(err)
		}
		catalog := []auth.CatalogEntry{{Type: "image", Endpoints: []auth.Endpoint{{Interface: "public", URL: "no-url"}}}}
		tokens := auth.Static{
			"admin":  {UserID: "u-admin", ProjectID: projA, Roles: []string{"admin"}, Catalog: catalog},
			"member": {UserID: "u-member", ProjectID: projA, Roles: []string{"member"}, Catalog: catalog},
		}
		svc, err := New(context.Background(), service.Deps{Config: cfg, DB: d, Validator: tokens,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		e := newEnvFor(t, svc, nil, d, dir)
		const msg = `invalid image service URL "no-url"`
		id := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		for _, c := range []struct {
			name, token, path string
			body              any
		}{
			{"type with store", "admin", "/types", map[string]any{"volume_type": map[string]any{"name": "t", "extra_specs": map[string]any{StoreSpec: "fast"}}}},
			{"volume from image", "member", "/volumes", map[string]any{"volume": map[string]any{"imageRef": "0b7e0c1e-6d1f-4d3c-9f1b-7b7e8e0e0e0e"}}},
			{"upload to image", "member", "/volumes/" + id + "/action", map[string]any{"os-volume_upload_image": map[string]any{"image_name": "i"}}},
		} {
			r := e.Do(c.token, "POST", "/v3/"+projA+c.path, c.body)
			if fault, m := errMessage(t, r); r.Code != 400 || fault != "badRequest" || m != msg {
				t.Errorf("%s: %d %s, want 400 %q", c.name, r.Code, r.Body, msg)
			}
		}
		if v := e.MustJSON(200, e.Do("member", "GET", "/v3/"+projA+"/volumes/"+id, nil))["volume"].(map[string]any); v["status"] != "available" {
			t.Errorf("volume after the rejected upload: %v", v["status"])
		}
	})
}
