package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/image/store/drivers"
	"github.com/ashlar-dev/ashlar/internal/image/store/file"
	"github.com/ashlar-dev/ashlar/internal/service"
	tasks "github.com/ashlar-dev/ashlar/internal/task"
)

// tokens: admin of project "admin"; members alice (p1) and bob (p2); a
// reader of p1.
var tokens = auth.Static{
	"admin":  {UserID: "u-admin", ProjectID: "admin", Roles: []string{"admin", "member", "reader"}},
	"alice":  {UserID: "u-alice", ProjectID: "p1", Roles: []string{"member", "reader"}},
	"bob":    {UserID: "u-bob", ProjectID: "p2", Roles: []string{"member", "reader"}},
	"reader": {UserID: "u-reader", ProjectID: "p1", Roles: []string{"reader"}},
}

// env is an image service on a real database and real file stores, one of
// which ("flaky") can be told to fail.
type env struct {
	*apitest.Client
	t     testing.TB
	svc   *Service
	srv   *httptest.Server
	cfg   *config.Config
	db    *db.DB
	state string
	flaky *faulty
	// stop ends the running service's task runner without handing its
	// work back, as a process that dies does.
	stop func()
	// address is the node's advertised address (its runner's).
	address string
}

// testLease is the task lease of the test services: a "dead" service's
// work is taken over by the next one within two of these on PostgreSQL
// (SQLite, one process, takes it over at start).
const testLease = 600 * time.Millisecond

// nodeLease is the lease of the services that stand for addressed nodes
// (the staging tests): their liveness decides where an import runs, and a
// heartbeat late by a loaded machine must not make a live node look dead.
const nodeLease = 3 * time.Second

const testConfig = `
[image]
enabled_backends = fast:file, cheap:file, reliable:file, flaky:file%s
default_backend = fast
allowed_import_hosts = 127.0.0.1
%s
[store:fast]
store_description = Fast store
[store:cheap]
store_description = Cheap store
`

func newEnv(t testing.TB, d *db.DB, extra string) *env {
	t.Helper()
	return newEnvWith(t, d, "", extra)
}

// newEnvWith adds stores (", id:type" items) and config text.
func newEnvWith(t testing.TB, d *db.DB, stores, extra string) *env {
	t.Helper()
	state := t.TempDir()
	cfg, err := config.Parse(fmt.Sprintf(testConfig, stores, extra), state)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cfg: cfg, db: d, state: state}
	e.start()
	return e
}

// peer starts another node on e's database and stores, advertising
// address, with its own staging directory unless shared says the staging
// directory is one both nodes see. e's runner is given the address of
// e's node (http://node-a) if it had none.
func (e *env) peer(address string, shared bool) *env {
	e.t.Helper()
	if e.address == "" {
		e.address = "http://node-a"
		e.start()
	}
	cfg := *e.cfg
	cfg.Image.StagingShared = shared
	e.cfg.Image.StagingShared = shared
	if !shared {
		cfg.Image.StagingDir = e.t.TempDir()
	}
	p := &env{t: e.t, cfg: &cfg, db: e.db, state: e.state, address: address}
	p.start()
	return p
}

// start (re)builds the service over the same state, like a process restart.
func (e *env) start() {
	t := e.t
	ctx := context.Background()
	var stores []*store.Store
	for _, sc := range e.cfg.Stores {
		drv, err := drivers.Factories()[sc.Type](ctx, sc)
		if err != nil {
			t.Fatal(err)
		}
		var d store.Driver = drv
		if sc.ID == "flaky" {
			if e.flaky == nil {
				e.flaky = &faulty{}
			}
			e.flaky.Driver = drv
			d = e.flaky
		}
		stores = append(stores, store.NewStore(sc, d, sc.ID == e.cfg.Image.DefaultBackend, nil))
	}
	ro := config.Store{ID: "web", Type: "http", Description: "Read-only store"}
	roDrv, _ := file.New(filepath.Join(e.state, "web"))
	stores = append(stores, store.NewStore(ro, readOnly{roDrv}, false, nil))
	stDrv, err := file.New(e.cfg.Image.StagingDir)
	if err != nil {
		t.Fatal(err)
	}
	staging := store.NewStore(config.Store{ID: store.StagingID, Type: "file"}, stDrv, false, nil)
	// A previous instance dies: its runner stops renewing what it holds
	// (its HTTP server is left running, its test cleanup closes it).
	if e.stop != nil {
		e.stop()
	}
	lease := testLease
	if e.address != "" {
		lease = nodeLease
	}
	runner := tasks.New(e.db, tasks.Options{Lease: lease, Poll: 20 * time.Millisecond, Exclusive: !e.db.Postgres(),
		Address: e.address})
	deps := service.Deps{Config: e.cfg, DB: e.db, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: prometheus.NewRegistry(), Validator: tokens, Tasks: runner}
	svc, err := NewWithStores(ctx, deps, store.NewSetOf(staging, stores...))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = runner.Run(rctx) }()
	e.stop = func() { cancel(); <-done }
	e.svc = svc
	e.srv = httptest.NewServer(api.Wrap("image", svc.Handler(), deps.Logger, nil, api.Glance))
	// A real listener: the data tests stream, stall and disconnect.
	e.Client = &apitest.Client{T: t, URL: e.srv.URL, Header: http.Header{"Accept": {"application/json"}}}
	srv, stop := e.srv, e.stop
	t.Cleanup(func() { srv.Close(); stop() })
}

type readOnly struct{ store.Driver }

func (readOnly) ReadOnly() bool { return true }

// faulty passes everything to a real file driver, but can make Put fail
// after some bytes were written, the way a full or unreachable backend does.
type faulty struct {
	store.Driver
	failAfter int64
	failKind  errs.Kind
}

func (f *faulty) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if f.failKind == 0 {
		return f.Driver.Put(ctx, key, r)
	}
	return f.Driver.Put(ctx, key, &failingReader{r: r, left: f.failAfter, kind: f.failKind})
}

type failingReader struct {
	r    io.Reader
	left int64
	kind errs.Kind
}

func (fr *failingReader) Read(p []byte) (int, error) {
	if fr.left <= 0 {
		return 0, errs.E(fr.kind, "injected backend failure")
	}
	if int64(len(p)) > fr.left {
		p = p[:fr.left]
	}
	n, err := fr.r.Read(p)
	fr.left -= int64(n)
	return n, err
}

func (e *env) create(token, body string) string {
	e.t.Helper()
	return e.MustJSON(201, e.Do(token, "POST", "/v2/images", body))["id"].(string)
}

func (e *env) image(id string) map[string]any {
	e.t.Helper()
	return e.MustJSON(200, e.Do("admin", "GET", "/v2/images/"+id, nil))
}

// waitImage polls until cond holds for the image (imports are async).
func (e *env) waitImage(id string, cond func(map[string]any) bool) map[string]any {
	e.t.Helper()
	var im map[string]any
	apitest.Eventually(e.t, 10*time.Second, func() bool { im = e.image(id); return cond(im) },
		func() string { return fmt.Sprintf("image never reached the condition: %v", im) })
	return im
}

// dial opens a raw connection to the service, closed when t ends, for the
// requests an HTTP client does not send: a body cut short or stalled, a
// broken chunked encoding.
func (e *env) dial(t testing.TB) net.Conn {
	t.Helper()
	u, _ := url.Parse(e.srv.URL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// partialUpload starts PUT /v2/images/<id>/<path> as alice on a raw
// connection, announcing 90000 bytes and sending the first 30000 of data.
func (e *env) partialUpload(t testing.TB, id, path string, data []byte) net.Conn {
	t.Helper()
	conn := e.dial(t)
	fmt.Fprintf(conn, "PUT /v2/images/%s/%s HTTP/1.1\r\nHost: x\r\nX-Auth-Token: alice\r\nContent-Type: application/octet-stream\r\nContent-Length: 90000\r\n\r\n", id, path)
	conn.Write(data[:30000])
	return conn
}

// objects lists the files in a store directory (temp files included).
func (e *env) objects(storeID string) []string {
	e.t.Helper()
	dir := filepath.Join(e.state, "images", storeID)
	if storeID == store.StagingID {
		dir = e.cfg.Image.StagingDir
	}
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		e.t.Fatal(err)
	}
	var out []string
	for _, en := range ents {
		out = append(out, en.Name())
	}
	return out
}

// addTask records an image task as a node left it: held by owner until
// leaseUntil (in the past: a dead node's).
func addTask(t testing.TB, d *db.DB, kind, subject string, payload any, owner string, leaseUntil time.Time) {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ExecContext(context.Background(), `INSERT INTO tasks (id, kind, subject, payload, state, attempts, epoch,
not_before, lease_owner, lease_until, created_at, updated_at) VALUES (?, ?, ?, ?, 'running', 1, 1, ?, ?, ?, ?, ?)`,
		uuid.NewString(), kind, subject, string(b), db.Now(), owner, db.Timestamp{Time: leaseUntil}, db.Now(), db.Now()); err != nil {
		t.Fatal(err)
	}
}

// unfinishedTasks counts the tasks of kind still pending or running.
func unfinishedTasks(t testing.TB, d *db.DB, kind string) int {
	t.Helper()
	var n int
	if err := d.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM tasks WHERE kind = ? AND state IN ('pending', 'running')`, kind).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
