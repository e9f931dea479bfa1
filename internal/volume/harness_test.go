package volume

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/apitest"
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
	// An unscoped token: a user, no project, no roles.
	"unscoped": {UserID: "u-unscoped"},
}

// env is the volume service under test with its test Glance; requests go
// through the shared harness (apitest.Client: Do, Must, MustJSON).
type env struct {
	apitest.Client
	t      *testing.T
	svc    *Service
	glance *testGlance
	db     *db.DB
	dir    string
	cancel context.CancelFunc
	done   chan struct{}
}

// newEnvFor wraps svc's handler as the server does and starts its worker.
func newEnvFor(t *testing.T, svc *Service, g *testGlance, d *db.DB, dir string) *env {
	t.Helper()
	h := api.Wrap("volume", svc.Handler(), svc.deps.Logger, nil, api.Cinder)
	e := &env{Client: apitest.Client{T: t, Handler: h}, t: t, svc: svc, glance: g, db: d, dir: dir}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func init() { ownRunnerPoll = 50 * time.Millisecond }

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
	return newEnvConfig(t, d, "", opts)
}

// newEnvConfig is newEnvWith with more configuration: volume is added to
// the [volume] section, sections (INI text) after it.
func newEnvConfig(t *testing.T, d *db.DB, volume string, opts func(t *testing.T, cfg *config.Config) Options, sections ...string) *env {
	t.Helper()
	g := newTestGlance(t)
	cfg, dir := testConfig(t, "[volume]\nglance_api_servers = "+g.srv.URL+"\n"+volume+"\n"+strings.Join(sections, "\n"))
	var o Options
	if opts != nil {
		o = opts(t, cfg)
	}
	svc, err := NewWithOptions(context.Background(), testDeps(cfg, d, testTokens), o)
	if err != nil {
		t.Fatal(err)
	}
	return newEnvFor(t, svc, g, d, dir)
}

// testConfig is the configuration of a test service: sections (INI text,
// may be empty) and the one backend, "local", the file driver under a
// fresh directory, which it returns too.
func testConfig(t testing.TB, sections string) (*config.Config, string) {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse(sections+`
[backend:local]
volume_driver = file
volumes_dir = `+filepath.Join(dir, "vols")+`
`, dir)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, dir
}

// testDeps are the service dependencies of a test: cfg on d, tokens
// validated by v, logs discarded, metrics in a registry of their own.
func testDeps(cfg *config.Config, d *db.DB, v auth.Validator) service.Deps {
	return service.Deps{Config: cfg, DB: d, Validator: v, Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()}
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

// createType makes a type as admin with extra specs.
func (e *env) createType(name string, specs map[string]string) string {
	e.t.Helper()
	body := map[string]any{"volume_type": map[string]any{"name": name, "extra_specs": specs}}
	m := e.MustJSON(200, e.Do("admin", "POST", "/v3/"+projA+"/types", body))
	return m["volume_type"].(map[string]any)["id"].(string)
}

// createVolume creates a volume as token and waits for status want.
func (e *env) createVolume(token, project string, fields map[string]any, want string) map[string]any {
	e.t.Helper()
	if _, ok := fields["size"]; !ok {
		fields["size"] = 1
	}
	m := e.MustJSON(202, e.Do(token, "POST", "/v3/"+project+"/volumes", map[string]any{"volume": fields}))
	id := m["volume"].(map[string]any)["id"].(string)
	return e.waitStatus(token, project, id, want)
}

func (e *env) waitStatus(token, project, id, want string) map[string]any {
	e.t.Helper()
	var last apitest.Resp
	var v map[string]any
	apitest.Eventually(e.t, 60*time.Second, func() bool {
		last = e.Do(token, "GET", "/v3/"+project+"/volumes/"+id, nil)
		if last.Code != 200 {
			return false
		}
		v, _ = last.JSON(e.t)["volume"].(map[string]any)
		return v["status"] == want
	}, func() string {
		return fmt.Sprintf("volume %s: %d %s, want status %s", id, last.Code, last.Body, want)
	})
	return v
}

// waitTasksDone waits until no task is pending or running.
func waitTasksDone(t *testing.T, d *db.DB) {
	t.Helper()
	var n int
	apitest.Eventually(t, 10*time.Second, func() bool {
		if err := d.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM tasks WHERE state IN ('pending', 'running')`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	}, func() string { return fmt.Sprintf("%d tasks unfinished", n) })
}

// errMessage returns the message of a Cinder error body and its fault name.
func errMessage(t *testing.T, r apitest.Resp) (string, string) {
	t.Helper()
	for k, v := range r.JSON(t) {
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
	return newEnvFor(t, svc, prev.glance, d, prev.dir)
}

// newBenchEnv is the volume handler on d without the background worker,
// for benchmarks.
func newBenchEnv(b *testing.B, d *db.DB) http.Handler {
	b.Helper()
	cfg, _ := testConfig(b, "")
	svc, err := New(context.Background(), testDeps(cfg, d, testTokens))
	if err != nil {
		b.Fatal(err)
	}
	return svc.Handler()
}

// oneMessage returns resource's user message (at 3.3), failing the test
// unless it has exactly one.
func (e *env) oneMessage(resource string) map[string]any {
	e.t.Helper()
	msgs := e.MustJSON(200, e.Do("member", "GET", "/v3/"+projA+"/messages?resource_uuid="+resource, nil,
		"OpenStack-API-Version", "volume 3.3"))["messages"].([]any)
	if len(msgs) != 1 {
		e.t.Fatalf("user messages of %s = %v, want one", resource, msgs)
	}
	return msgs[0].(map[string]any)
}
