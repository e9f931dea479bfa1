package identity_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/identity"
	"github.com/ashlar-dev/ashlar/internal/server"
)

// TestGophercloud runs the real server wiring (identity, image and volume
// on their own listeners) and has gophercloud authenticate from the
// environment, as a Terraform user would, then find the image and
// block-storage endpoints in the catalog.
func TestGophercloud(t *testing.T) {
	for _, engine := range dbtest.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			conn := dbtest.Connection(t, engine)
			d, err := db.Open(ctx, conn)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			d.Close()

			idSrv, imgSrv, volSrv := httptest.NewUnstartedServer(nil), httptest.NewUnstartedServer(nil), httptest.NewUnstartedServer(nil)
			cfg, err := config.Load("", t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			cfg.Database.Connection = conn
			cfg.Default.MetricsBind = ""
			cfg.Identity.PublicURL = "http://" + idSrv.Listener.Addr().String()
			cfg.Image.PublicURL = "http://" + imgSrv.Listener.Addr().String()
			cfg.Volume.PublicURL = "http://" + volSrv.Listener.Addr().String()
			t.Setenv(identity.EnvAdminPassword, "gopher-secret")
			srv, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			for name, hs := range map[string]*httptest.Server{"identity": idSrv, "image": imgSrv, "volume": volSrv} {
				hs.Config.Handler = srv.Handler(name)
				hs.Start()
				t.Cleanup(hs.Close)
			}

			// The environment is what `source <state_path>/openrc` sets.
			rc, err := os.ReadFile(filepath.Join(cfg.Default.StatePath, "openrc"))
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(rc), "\n") {
				k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
				if ok && strings.HasPrefix(line, "export ") {
					t.Setenv(k, strings.Trim(v, "'"))
				}
			}
			if os.Getenv("OS_PASSWORD") != "gopher-secret" || os.Getenv("OS_AUTH_URL") != cfg.Identity.PublicURL+"/v3" {
				t.Fatalf("openrc:\n%s", rc)
			}
			ao, err := openstack.AuthOptionsFromEnv()
			if err != nil {
				t.Fatal(err)
			}
			pc, err := openstack.AuthenticatedClient(ctx, ao)
			if err != nil {
				t.Fatalf("AuthenticatedClient: %v", err)
			}
			idc, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
			if err != nil {
				t.Fatal(err)
			}
			res := tokens.Get(ctx, idc, pc.Token())
			proj, err := res.ExtractProject()
			if err != nil || proj.Name != "admin" {
				t.Fatalf("token project: %+v %v", proj, err)
			}
			roles, err := res.ExtractRoles()
			if err != nil || len(roles) != 3 {
				t.Errorf("token roles: %+v %v", roles, err)
			}
			eo := gophercloud.EndpointOpts{Region: "RegionOne"}
			img, err := openstack.NewImageV2(pc, eo)
			if err != nil || img.Endpoint != cfg.Image.PublicURL+"/" || img.ResourceBase != cfg.Image.PublicURL+"/v2/" {
				t.Errorf("image endpoint: %+v %v", img, err)
			}
			bs, err := openstack.NewBlockStorageV3(pc, eo)
			if err != nil || bs.Endpoint != cfg.Volume.PublicURL+"/v3/"+proj.ID+"/" {
				t.Errorf("block-storage endpoint: %q %v", bs.Endpoint, err)
			}
			if _, err := openstack.NewBlockStorageV3(pc, gophercloud.EndpointOpts{Region: "Elsewhere"}); err == nil {
				t.Error("an unknown region found an endpoint")
			}
		})
	}
}
