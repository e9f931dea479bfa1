package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/identity"
)

// cluster is the three services of one process, built in-process on a
// fresh database and called through their wrapped handlers (api.Wrap, as
// Run serves them). It has an admin token (admin project) and a member
// token (project "fuzz", user "fuzzer"), one image, one volume type and
// one volume for requests to name.
type cluster struct {
	srv                     *Server
	identity, image, volume *apitest.Client
	// errors holds what the services logged at level error (panics with
	// their stacks, internal errors).
	errors *logBuffer

	token, project, userID          string
	member, memberProject, memberID string
	imageID, volumeID, typID        string
}

// logBuffer is a bytes.Buffer safe for the services' goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Take returns what was logged since the last Take.
func (b *logBuffer) Take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

// adminPassword is the admin password of every test server
// (identity.EnvAdminPassword).
const adminPassword = "server-test-pw"

// newCluster builds the cluster on engine ("sqlite" or "postgres").
func newCluster(t testing.TB, engine string) *cluster {
	t.Helper()
	t.Setenv(identity.EnvAdminPassword, adminPassword)
	cfg, err := config.Parse("[DEFAULT]\nmetrics_bind =\n[dashboard]\nbind =\n[database]\nconnection = sqlite:///unused.db\n", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{errors: &logBuffer{}}
	logger := slog.New(slog.NewTextHandler(c.errors, &slog.HandlerOptions{Level: slog.LevelError}))
	if c.srv, err = newWithDB(context.Background(), cfg, dbtest.Open(t, engine), logger); err != nil {
		t.Fatal(err)
	}
	client := func(name string) *apitest.Client { return &apitest.Client{T: t, Handler: c.srv.Handler(name)} }
	c.identity, c.image, c.volume = client(config.ServiceIdentity), client(config.ServiceImage), client(config.ServiceVolume)
	id := c.identity

	c.token, c.project, c.userID = login(id, "admin", adminPassword, "admin")
	fp := id.MustJSON(201, id.Do(c.token, "POST", "/v3/projects", `{"project": {"name": "fuzz"}}`))
	c.memberProject, _ = apitest.Dig(fp, "project", "id").(string)
	u := id.MustJSON(201, id.Do(c.token, "POST", "/v3/users", `{"user": {"name": "fuzzer", "password": "fuzzer-pw"}}`))
	c.memberID, _ = apitest.Dig(u, "user", "id").(string)
	roles, _ := id.MustJSON(200, id.Do(c.token, "GET", "/v3/roles?name=member", nil))["roles"].([]any)
	if len(roles) != 1 {
		t.Fatalf("member role: %v", roles)
	}
	role, _ := apitest.Dig(roles[0], "id").(string)
	id.Must(204, id.Do(c.token, "PUT", "/v3/projects/"+c.memberProject+"/users/"+c.memberID+"/roles/"+role, nil))
	c.member, _, _ = login(id, "fuzzer", "fuzzer-pw", "fuzz")

	img := c.image.MustJSON(201, c.image.Do(c.token, "POST", "/v2/images",
		`{"name": "edge", "disk_format": "raw", "container_format": "bare"}`))
	c.imageID, _ = img["id"].(string)
	typ := c.volume.MustJSON(200, c.volume.Do(c.token, "POST", "/v3/"+c.project+"/types", `{"volume_type": {"name": "edge"}}`))
	c.typID, _ = apitest.Dig(typ, "volume_type", "id").(string)
	vol := c.volume.MustJSON(202, c.volume.Do(c.token, "POST", "/v3/"+c.project+"/volumes", `{"volume": {"size": 1, "name": "edge"}}`))
	c.volumeID, _ = apitest.Dig(vol, "volume", "id").(string)
	if c.memberProject == "" || c.memberID == "" || c.imageID == "" || c.typID == "" || c.volumeID == "" {
		t.Fatalf("fixtures: project %q user %q image %q type %q volume %q", c.memberProject, c.memberID, c.imageID, c.typID, c.volumeID)
	}
	return c
}

// login returns a project-scoped token of user from the identity service
// id, and the ids of the project and the user.
func login(id *apitest.Client, user, password, project string) (token, projectID, userID string) {
	id.T.Helper()
	r := id.Must(201, id.Do("", "POST", "/v3/auth/tokens", fmt.Sprintf(`{"auth": {"identity": {"methods": ["password"],
		"password": {"user": {"name": %q, "domain": {"id": "default"}, "password": %q}}},
		"scope": {"project": {"name": %q, "domain": {"id": "default"}}}}}`, user, password, project)))
	body := r.JSON(id.T)
	projectID, _ = apitest.Dig(body, "token", "project", "id").(string)
	userID, _ = apitest.Dig(body, "token", "user", "id").(string)
	token = r.Header.Get("X-Subject-Token")
	if token == "" || projectID == "" || userID == "" {
		id.T.Fatalf("token of %s: %s", user, r.Body)
	}
	return token, projectID, userID
}

// client returns the client of the named service.
func (c *cluster) client(service string) *apitest.Client {
	switch service {
	case config.ServiceIdentity:
		return c.identity
	case config.ServiceImage:
		return c.image
	}
	return c.volume
}

// expand replaces {p}, {img}, {vol}, {type}, {user}, {fp} and {member} in
// s with the cluster's ids ({p}: the admin project; {fp} and {member}: the
// member's project and user).
func (c *cluster) expand(s string) string {
	return strings.NewReplacer("{p}", c.project, "{img}", c.imageID, "{vol}", c.volumeID,
		"{type}", c.typID, "{user}", c.userID, "{fp}", c.memberProject, "{member}", c.memberID).Replace(s)
}
