package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
)

const adminPW = "admin-secret"

// env is an embedded identity served by httptest on a fresh database, with
// an apitest client for it (a real listener: the external validator and
// gophercloud need a URL).
type env struct {
	*apitest.Client
	t   *testing.T
	s   *Service
	srv *httptest.Server
	cfg *config.Config
	// validations counts GET /v3/auth/tokens requests served.
	validations atomic.Int64
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testConfig(t testing.TB, identityURL string) *config.Config {
	t.Helper()
	cfg, err := config.Load("", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Identity.PublicURL = identityURL
	cfg.Image.PublicURL = "http://image.test:9292"
	cfg.Volume.PublicURL = "http://volume.test:8776"
	return cfg
}

// newEnv bootstraps an identity service with admin password adminPW.
func newEnv(t *testing.T, d *db.DB) *env {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	cfg := testConfig(t, "http://"+srv.Listener.Addr().String())
	s, err := newService(context.Background(), cfg, d, quietLogger(), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Bootstrap(context.Background(), BootstrapOptions{Password: adminPW}); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, s: s, srv: srv, cfg: cfg}
	h := api.Wrap("identity", s.Handler(), quietLogger(), nil, api.Keystone)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/v3/auth/tokens" {
			e.validations.Add(1)
		}
		h.ServeHTTP(w, r)
	})
	srv.Start()
	t.Cleanup(srv.Close)
	e.Client = &apitest.Client{T: t, URL: srv.URL, HTTP: srv.Client()}
	return e
}

func passwordAuth(user, pw, project string) map[string]any {
	a := map[string]any{"identity": map[string]any{"methods": []string{"password"},
		"password": map[string]any{"user": map[string]any{"name": user, "domain": map[string]any{"name": "Default"}, "password": pw}}}}
	if project != "" {
		a["scope"] = map[string]any{"project": map[string]any{"name": project, "domain": map[string]any{"id": "default"}}}
	}
	return map[string]any{"auth": a}
}

// token issues a token and fails the test unless it gets one.
func (e *env) token(user, pw, project string) string {
	e.t.Helper()
	r := e.Do("", "POST", "/v3/auth/tokens", passwordAuth(user, pw, project))
	if r.Code != 201 || r.Header.Get("X-Subject-Token") == "" {
		e.t.Fatalf("auth %s/%s: %d %s", user, project, r.Code, r.Body)
	}
	return r.Header.Get("X-Subject-Token")
}

// user creates a user with a role on a new project of the same name and
// returns the user's project-scoped token and the ids.
func (e *env) user(name, roleName string) (tok, userID, projectID string) {
	e.t.Helper()
	admin := e.token("admin", adminPW, "admin")
	p := e.MustJSON(201, e.Do(admin, "POST", "/v3/projects", map[string]any{"project": map[string]any{"name": name}}))
	projectID = p["project"].(map[string]any)["id"].(string)
	u := e.MustJSON(201, e.Do(admin, "POST", "/v3/users", map[string]any{"user": map[string]any{"name": name, "password": name + "-pw"}}))
	userID = u["user"].(map[string]any)["id"].(string)
	roleID := e.s.snap.Load().roleByName[roleName].ID
	e.Must(204, e.Do(admin, "PUT", "/v3/projects/"+projectID+"/users/"+userID+"/roles/"+roleID, nil))
	return e.token(name, name+"-pw", name), userID, projectID
}

func authRequestFor(t *testing.T, user, pw string) *http.Request {
	b, _ := json.Marshal(passwordAuth(user, pw, ""))
	return httptest.NewRequest("POST", "/v3/auth/tokens", bytes.NewReader(b))
}

func authRequestForScoped(t testing.TB, user, pw, project string) *http.Request {
	b, _ := json.Marshal(passwordAuth(user, pw, project))
	return httptest.NewRequest("POST", "/v3/auth/tokens", bytes.NewReader(b))
}
