package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// testConfig returns embedded defaults on free ports with the given
// database; defaults are more "key = value" lines for [DEFAULT].
func testConfig(t *testing.T, connection string, defaults ...string) *config.Config {
	t.Helper()
	text := fmt.Sprintf("[DEFAULT]\nmetrics_bind = %s\n%s\n[database]\nconnection = %s\n[identity]\nbind = %s\n[image]\nbind = %s\n[volume]\nbind = %s\n",
		freePort(t), strings.Join(defaults, "\n"), connection, freePort(t), freePort(t), freePort(t))
	cfg, err := config.Parse(text, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The three services start on their own addresses, answer version documents
// and health checks, expose metrics, and stop cleanly, on both engines.
func TestServeAllServices(t *testing.T) {
	for _, engine := range dbtest.Engines {
		t.Run(engine, func(t *testing.T) {
			conn := dbtest.Connection(t, engine)
			cfg := testConfig(t, conn)
			ctx := context.Background()
			if engine == "postgres" {
				// serve refuses a PostgreSQL schema that is behind.
				if _, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil ||
					!strings.Contains(err.Error(), "ashlar db migrate") {
					t.Fatalf("New on an unmigrated postgres = %v, want a message naming ashlar db migrate", err)
				}
				cfg = testConfig(t, migrated(t, engine))
			}
			srv, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			runCtx, stop := context.WithCancel(ctx)
			ready := make(chan struct{})
			done := make(chan error, 1)
			go func() { done <- srv.Run(runCtx, func() { close(ready) }) }()
			select {
			case <-ready:
			case err := <-done:
				t.Fatalf("Run: %v", err)
			}

			for _, tt := range []struct {
				name, bind string
				status     int
			}{
				{"identity", cfg.Identity.Bind, 300},
				{"image", cfg.Image.Bind, 300},
				{"volume", cfg.Volume.Bind, 300},
			} {
				resp := get(t, "http://"+tt.bind+"/")
				var doc map[string]any
				if resp.StatusCode != tt.status || json.Unmarshal(resp.body, &doc) != nil || doc["versions"] == nil {
					t.Errorf("%s GET /: %d %s", tt.name, resp.StatusCode, resp.body)
				}
				if !strings.HasPrefix(resp.Header.Get("X-Openstack-Request-Id"), "req-") {
					t.Errorf("%s: no request id", tt.name)
				}
				if h := get(t, "http://"+tt.bind+"/healthcheck"); h.StatusCode != 200 || string(h.body) != "OK" {
					t.Errorf("%s healthcheck: %d %q", tt.name, h.StatusCode, h.body)
				}
			}
			m := get(t, "http://"+cfg.Default.MetricsBind+"/metrics")
			if !strings.Contains(string(m.body), `ashlar_http_requests_total{method="GET",route="/healthcheck",service="image",status="200"} 1`) {
				t.Errorf("metrics lack the image healthcheck counter:\n%.2000s", m.body)
			}

			stop()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run after shutdown: %v", err)
				}
			case <-time.After(ShutdownTimeout + 5*time.Second):
				t.Fatal("Run did not return after cancel")
			}
			if _, err := net.DialTimeout("tcp", cfg.Image.Bind, time.Second); err == nil {
				t.Error("image listener still open after shutdown")
			}
		})
	}
}

// migrated returns the connection URL of a fresh, migrated database.
func migrated(t *testing.T, engine string) string {
	t.Helper()
	conn := dbtest.Connection(t, engine)
	d, err := db.Open(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return conn
}

type response struct {
	*http.Response
	body []byte
}

func get(t *testing.T, url string) response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp, b}
}
