package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/identity"
	"github.com/ashlar-dev/ashlar/internal/image/store/drivers"
)

// Tests of a whole Server on its listeners: start, health, metrics,
// graceful shutdown, and the volume service reaching its own image service
// in-process.

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
	return parseTestConfig(t, connection, map[string]string{
		"DEFAULT": "metrics_bind = " + freePort(t) + "\n" + strings.Join(defaults, "\n")})
}

// parseTestConfig parses the config of one process whose services listen
// on free ports, with metrics and the dashboard off and its database at
// connection. extra adds lines to the sections it names, those above or
// new ones such as "store:ceph" (a key given again wins); checks are the
// drivers' option checks.
func parseTestConfig(t *testing.T, connection string, extra map[string]string, checks ...config.Check) *config.Config {
	t.Helper()
	base := []struct{ section, lines string }{
		{"DEFAULT", "metrics_bind ="}, {"dashboard", "bind ="}, {"database", "connection = " + connection},
		{"identity", "bind = " + freePort(t)}, {"image", "bind = " + freePort(t)}, {"volume", "bind = " + freePort(t)},
	}
	var b strings.Builder
	done := map[string]bool{}
	for _, s := range base {
		fmt.Fprintf(&b, "[%s]\n%s\n%s\n", s.section, s.lines, extra[s.section])
		done[s.section] = true
	}
	for _, section := range slices.Sorted(maps.Keys(extra)) {
		if !done[section] {
			fmt.Fprintf(&b, "[%s]\n%s\n", section, extra[section])
		}
	}
	cfg, err := config.Parse(b.String(), t.TempDir(), checks...)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// running is a Server whose Run a test drives: stop cancels Run's
// context; done is closed when Run has returned err.
type running struct {
	*Server
	stop context.CancelFunc
	done chan struct{}
	err  error
}

// start builds the server of cfg and runs it until its listeners are
// ready. When the test ends it is stopped and closed.
func start(t *testing.T, cfg *config.Config) *running {
	t.Helper()
	srv, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	r := &running{Server: srv, stop: stop, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		defer close(r.done)
		r.err = srv.Run(ctx, func() { close(ready) })
	}()
	t.Cleanup(func() {
		stop()
		<-r.done
		srv.Close()
	})
	select {
	case <-ready:
	case <-r.done:
		t.Fatalf("Run: %v", r.err)
	}
	return r
}

// serve runs the server of cfg until the test ends.
func serve(t *testing.T, cfg *config.Config) *Server { return start(t, cfg).Server }

// adminToken is a token of the admin user, scoped to project admin.
// apiClients are the admin's token and the volume (at 3.67: project-less
// URLs) and image clients of the server cfg configures.
func apiClients(t *testing.T, cfg *config.Config) (token string, vol, images *apitest.Client) {
	t.Helper()
	token = adminToken(t, "http://"+cfg.Identity.Bind)
	vol = &apitest.Client{T: t, URL: "http://" + cfg.Volume.Bind + "/v3", Header: http.Header{}}
	vol.Header.Set("OpenStack-API-Version", "volume 3.67")
	images = &apitest.Client{T: t, URL: "http://" + cfg.Image.Bind}
	return token, vol, images
}

// waitStatus polls path through c until the status of its object (under
// key, or the body itself) is want, for up to timeout; a status of error or
// killed fails the test at once, with why's text when why is not nil.
func waitStatus(t *testing.T, c *apitest.Client, token, path, key, want string, timeout time.Duration, why func() string) map[string]any {
	t.Helper()
	var obj map[string]any
	apitest.Eventually(t, timeout, func() bool {
		obj = c.MustJSON(200, c.Do(token, "GET", path, nil))
		if key != "" {
			obj, _ = obj[key].(map[string]any)
		}
		if s := obj["status"]; s == "error" || s == "killed" {
			more := ""
			if why != nil {
				more = "; " + why()
			}
			t.Fatalf("%s: status %v, want %s%s", path, s, want, more)
		}
		return obj["status"] == want
	}, func() string { return fmt.Sprintf("%s: status %v, want %s", path, obj["status"], want) })
	return obj
}

func adminToken(t *testing.T, identityURL string) string {
	t.Helper()
	token, _, _ := login(&apitest.Client{T: t, URL: identityURL}, "admin", adminPassword, "admin")
	return token
}

// The three services start on their own addresses, answer version documents
// and health checks, expose metrics, and stop cleanly, on both engines.
func TestServeAllServices(t *testing.T) {
	for _, engine := range dbtest.Engines {
		t.Run(engine, func(t *testing.T) {
			conn := dbtest.Connection(t, engine)
			cfg := testConfig(t, conn)
			if engine == "postgres" {
				// serve refuses a PostgreSQL schema that is behind.
				if _, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler)); err == nil ||
					!strings.Contains(err.Error(), "ashlar db migrate") {
					t.Fatalf("New on an unmigrated postgres = %v, want a message naming ashlar db migrate", err)
				}
				cfg = testConfig(t, migrated(t, engine))
			}
			srv := start(t, cfg)

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

			srv.stop()
			select {
			case <-srv.done:
				if srv.err != nil {
					t.Errorf("Run after shutdown: %v", srv.err)
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

// SIGTERM (a cancelled Run context) stops new connections but lets an
// upload that is already streaming finish and succeed.
func TestShutdownLetsInFlightUploadFinish(t *testing.T) {
	t.Setenv(identity.EnvAdminPassword, adminPassword)
	cfg := testConfig(t, "sqlite:///"+t.TempDir()+"/a.db")
	srv := start(t, cfg)
	token := adminToken(t, "http://"+cfg.Identity.Bind)
	img := "http://" + cfg.Image.Bind
	images := &apitest.Client{T: t, URL: img}
	created := images.MustJSON(201, images.Do(token, "POST", "/v2/images",
		`{"name": "inflight", "disk_format": "raw", "container_format": "bare"}`))
	id, _ := created["id"].(string)
	status := func() string {
		var s string
		_ = srv.DB().QueryRowContext(context.Background(), "SELECT status FROM images WHERE id = ?", id).Scan(&s)
		return s
	}

	// Start the upload, send half the body, then shut down.
	body, w := io.Pipe()
	const half = 4 << 20
	put, _ := http.NewRequest("PUT", img+"/v2/images/"+id+"/file", body)
	put.Header.Set("X-Auth-Token", token)
	put.Header.Set("Content-Type", "application/octet-stream")
	put.ContentLength = 2 * half
	// A connection of its own: on a reused keep-alive connection the server
	// could still see the connection as idle (request not read yet) when
	// shutdown begins, and closing idle connections is what Shutdown does.
	upClient := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	result := make(chan *http.Response, 1)
	go func() {
		r, err := upClient.Do(put)
		if err != nil {
			t.Errorf("upload: %v", err)
		}
		result <- r
	}()
	if _, err := w.Write(bytes.Repeat([]byte{1}, half)); err != nil {
		t.Fatal(err)
	}
	// In flight for the server too: the image is saving.
	apitest.Eventually(t, 10*time.Second, func() bool { return status() == "saving" },
		func() string { return fmt.Sprintf("image never reached saving (status %q)", status()) })
	srv.stop()
	// New connections are refused once shutdown has begun.
	apitest.Eventually(t, 5*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", cfg.Image.Bind, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, func() string { return "image listener still accepting after shutdown began" })
	select {
	case <-srv.done:
		t.Fatalf("Run returned (%v) while an upload was in flight", srv.err)
	default:
	}
	if _, err := w.Write(bytes.Repeat([]byte{2}, half)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	r := <-result
	if r == nil {
		t.Fatal("no response to the in-flight upload")
	}
	r.Body.Close()
	if r.StatusCode != http.StatusNoContent {
		t.Errorf("in-flight upload finished with %d, want 204", r.StatusCode)
	}
	select {
	case <-srv.done:
		if srv.err != nil {
			t.Errorf("Run: %v", srv.err)
		}
	case <-time.After(ShutdownTimeout):
		t.Fatal("Run did not return after the in-flight upload finished")
	}
	// The upload really landed: the image is active in the default store.
	if s := status(); s != "active" {
		t.Errorf("image status after shutdown = %q; want active", s)
	}
}

// The volume service reaches the image service of its own process without
// a socket: with the image service's public URL pointing at a port nothing
// listens on, upload-to-image still lands the image, since requests for
// that host are served in-process (internal/api/loopback); and a store
// failure comes back through it as it would over HTTP: the image is
// deleted, the volume is available again and a user message says why.
func TestVolumeUploadReachesOwnImageServiceInProcess(t *testing.T) {
	t.Setenv(identity.EnvAdminPassword, adminPassword)
	nowhere := freePort(t) // closed again: connecting there is refused
	// as serve loads it: the drivers resolve their options (the default
	// store's directory, removed below)
	cfg := parseTestConfig(t, "sqlite:///"+t.TempDir()+"/a.db",
		map[string]string{"image": "public_url = http://" + nowhere}, drivers.Check)
	serve(t, cfg)
	if c, err := net.DialTimeout("tcp", nowhere, time.Second); err == nil {
		c.Close()
		t.Skipf("something listens on %s", nowhere)
	}

	token, vol, images := apiClients(t, cfg)
	waitFor := func(c *apitest.Client, path, key, want string) map[string]any {
		t.Helper()
		return waitStatus(t, c, token, path, key, want, 60*time.Second, nil)
	}
	upload := func(volID, name string) string {
		t.Helper()
		r := vol.MustJSON(202, vol.Do(token, "POST", "/volumes/"+volID+"/action", `{"os-volume_upload_image": {"image_name": "`+name+
			`", "disk_format": "qcow2", "container_format": "bare"}}`))
		id, _ := apitest.Dig(r, "os-volume_upload_image", "image_id").(string)
		return id
	}

	volID, _ := apitest.Dig(vol.MustJSON(202, vol.Do(token, "POST", "/volumes", `{"volume": {"size": 1, "name": "in-process"}}`)), "volume", "id").(string)
	volPath := "/volumes/" + volID
	waitFor(vol, volPath, "volume", "available")

	t.Run("upload lands", func(t *testing.T) {
		id := upload(volID, "in-process")
		img := waitFor(images, "/v2/images/"+id, "", "active")
		if img["stores"] != "fast" || img["disk_format"] != "qcow2" || img["size"].(float64) <= 0 || img["checksum"] == nil {
			t.Errorf("image = %v", img)
		}
		waitFor(vol, volPath, "volume", "available")
	})

	t.Run("store failure comes back", func(t *testing.T) {
		// the default store's directory becomes a file: nothing can be written there
		dir := cfg.Stores[0].Options["filesystem_store_datadir"]
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
			t.Fatal(err)
		}
		id := upload(volID, "doomed")
		var r apitest.Resp
		apitest.Eventually(t, 60*time.Second, func() bool {
			r = images.Do(token, "GET", "/v2/images/"+id, nil)
			return r.Code == http.StatusNotFound // deleted after the failed upload
		}, func() string { return fmt.Sprintf("image %s still there (%d) after the store failed", id, r.Code) })
		waitFor(vol, volPath, "volume", "available")
		msgs, _ := vol.MustJSON(200, vol.Do(token, "GET", "/messages", nil))["messages"].([]any)
		found := false
		for _, m := range msgs {
			// VOLUME_003: copy volume to image; 004: failed at the backend
			if apitest.Dig(m, "resource_uuid") == volID && apitest.Dig(m, "event_id") == "VOLUME_VOLUME_003_004" {
				found = true
			}
		}
		if !found {
			t.Errorf("no upload-failure message for volume %s: %v", volID, msgs)
		}
	})
}
