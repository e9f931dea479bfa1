package volume

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/service"
)

// Test identities: projects are hex, as Cinder's project_id_regex wants.
const (
	projA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	projB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

var testTokens = auth.Static{
	"admin":   {UserID: "u-admin", ProjectID: projA, Roles: []string{"admin", "member", "reader"}},
	"member":  {UserID: "u-member", ProjectID: projA, Roles: []string{"member", "reader"}},
	"reader":  {UserID: "u-reader", ProjectID: projA, Roles: []string{"reader"}},
	"memberB": {UserID: "u-memberb", ProjectID: projB, Roles: []string{"member", "reader"}},
	"adminB":  {UserID: "u-adminb", ProjectID: projB, Roles: []string{"admin", "member", "reader"}},
}

type env struct {
	t      *testing.T
	svc    *Service
	h      http.Handler
	glance *testGlance
	db     *db.DB
	dir    string
	cancel context.CancelFunc
	done   chan struct{}
}

func init() { pollInterval = 50 * time.Millisecond }

// newEnv builds the service on d with the file driver in a temp dir and
// the test Glance, and runs its background worker.
func newEnv(t *testing.T, d *db.DB) *env {
	t.Helper()
	return newEnvWith(t, d, nil)
}

// newEnvWith is newEnv with service options built from the configuration
// (e.g. a wrapped driver); opts may be nil.
func newEnvWith(t *testing.T, d *db.DB, opts func(t *testing.T, cfg *config.Config) Options) *env {
	t.Helper()
	g := newTestGlance(t)
	dir := t.TempDir()
	cfg, err := config.Parse(`
[volume]
glance_api_servers = `+g.srv.URL+`
enabled_backends = local
[backend:local]
volume_driver = file
volumes_dir = `+filepath.Join(dir, "vols")+`
`, dir)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	deps := service.Deps{Config: cfg, DB: d, Logger: logger, Registry: prometheus.NewRegistry(), Validator: testTokens}
	var o Options
	if opts != nil {
		o = opts(t, cfg)
	}
	svc, err := NewWithOptions(context.Background(), deps, o)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, svc: svc, glance: g, db: d, dir: dir,
		h: api.Wrap("volume", svc.Handler(), logger, nil, api.Cinder)}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *env) start() {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	go func() { defer close(e.done); _ = e.svc.Run(ctx) }()
}

func (e *env) stop() {
	if e.cancel != nil {
		e.cancel()
		<-e.done
		e.cancel = nil
	}
}

type resp struct {
	Code   int
	Header http.Header
	Body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body %q: %v", r.Body, err)
	}
	return m
}

// do sends a request as token; body is JSON-encoded unless a string.
func (e *env) do(token, method, path string, body any, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, _ := json.Marshal(b)
		rd = bytes.NewReader(buf)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return resp{w.Code, w.Header(), w.Body.Bytes()}
}

func (e *env) must(code int, r resp) map[string]any {
	e.t.Helper()
	if r.Code != code {
		e.t.Fatalf("status %d, want %d: %s", r.Code, code, r.Body)
	}
	if len(r.Body) == 0 {
		return nil
	}
	return r.json(e.t)
}

// createType makes a type as admin with extra specs.
func (e *env) createType(name string, specs map[string]string) string {
	e.t.Helper()
	body := map[string]any{"volume_type": map[string]any{"name": name, "extra_specs": specs}}
	m := e.must(200, e.do("admin", "POST", "/v3/"+projA+"/types", body))
	return m["volume_type"].(map[string]any)["id"].(string)
}

// createVolume creates a volume as token and waits for status want.
func (e *env) createVolume(token, project string, fields map[string]any, want string) map[string]any {
	e.t.Helper()
	if _, ok := fields["size"]; !ok {
		fields["size"] = 1
	}
	m := e.must(202, e.do(token, "POST", "/v3/"+project+"/volumes", map[string]any{"volume": fields}))
	id := m["volume"].(map[string]any)["id"].(string)
	return e.waitStatus(token, project, id, want)
}

func (e *env) waitStatus(token, project, id, want string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := e.do(token, "GET", "/v3/"+project+"/volumes/"+id, nil)
		if r.Code == 200 {
			v := r.json(e.t)["volume"].(map[string]any)
			if v["status"] == want {
				return v
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("volume %s status %v, want %s", id, v["status"], want)
			}
		} else if time.Now().After(deadline) {
			e.t.Fatalf("volume %s: %d %s", id, r.Code, r.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// errMessage returns the message of a Cinder error body and its fault name.
func errMessage(t *testing.T, r resp) (string, string) {
	t.Helper()
	for k, v := range r.json(t) {
		m, _ := v.(map[string]any)
		msg, _ := m["message"].(string)
		return k, msg
	}
	return "", ""
}

// newEnvOn starts a second service (a restarted process) on the same
// database, volumes directory and image endpoint as prev.
func newEnvOn(t *testing.T, d *db.DB, prev *env) *env {
	t.Helper()
	svc, err := New(context.Background(), prev.svc.deps)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, svc: svc, glance: prev.glance, db: d, dir: prev.dir,
		h: api.Wrap("volume", svc.Handler(), prev.svc.deps.Logger, nil, api.Cinder)}
	e.start()
	t.Cleanup(e.stop)
	return e
}

// newBenchEnv is the volume handler on d without the background worker,
// for benchmarks.
func newBenchEnv(b *testing.B, d *db.DB) http.Handler {
	b.Helper()
	dir := b.TempDir()
	cfg, err := config.Parse(`
[volume]
enabled_backends = local
[backend:local]
volumes_dir = `+filepath.Join(dir, "vols")+`
`, dir)
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := New(context.Background(), service.Deps{Config: cfg, DB: d, Logger: logger,
		Registry: prometheus.NewRegistry(), Validator: testTokens})
	if err != nil {
		b.Fatal(err)
	}
	return svc.Handler()
}
