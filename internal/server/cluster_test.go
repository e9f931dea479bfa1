package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/identity"
)

// cluster is the three services of one process, built in-process on a
// fresh database and called through their wrapped handlers (api.Wrap, as
// Run serves them), with an admin token.
type cluster struct {
	srv                      *Server
	identity, image, volume  *apitest.Client
	token, project, userID   string
	imageID, volumeID, typID string
}

const clusterPassword = "edge-test-pw"

// newCluster builds the cluster on engine ("sqlite" or "postgres") and
// creates one image, one volume type and one volume for the requests to
// name.
func newCluster(t testing.TB, engine string) *cluster {
	t.Helper()
	t.Setenv(identity.EnvAdminPassword, clusterPassword)
	state := t.TempDir()
	cfg, err := config.Parse("[DEFAULT]\nmetrics_bind =\n[database]\nconnection = sqlite:///unused.db\n", state)
	if err != nil {
		t.Fatal(err)
	}
	d := dbtest.Open(t, engine)
	srv, err := newWithDB(context.Background(), cfg, d, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{srv: srv}
	client := func(name string) *apitest.Client {
		return &apitest.Client{T: t, Handler: srv.Handler(name)}
	}
	c.identity, c.image, c.volume = client(config.ServiceIdentity), client(config.ServiceImage), client(config.ServiceVolume)

	tok := c.identity.Must(201, c.identity.Do("", "POST", "/v3/auth/tokens", fmt.Sprintf(`{"auth": {"identity": {"methods": ["password"],
		"password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": %q}}},
		"scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}`, clusterPassword)))
	c.token = tok.Header.Get("X-Subject-Token")
	body := tok.JSON(t)
	c.project, _ = apitest.Dig(body, "token", "project", "id").(string)
	c.userID, _ = apitest.Dig(body, "token", "user", "id").(string)
	if c.token == "" || c.project == "" || c.userID == "" {
		t.Fatalf("token response: %s", tok.Body)
	}
	img := c.image.MustJSON(201, c.image.Do(c.token, "POST", "/v2/images",
		`{"name": "edge", "disk_format": "raw", "container_format": "bare"}`))
	c.imageID, _ = img["id"].(string)
	typ := c.volume.MustJSON(200, c.volume.Do(c.token, "POST", "/v3/"+c.project+"/types", `{"volume_type": {"name": "edge"}}`))
	c.typID, _ = apitest.Dig(typ, "volume_type", "id").(string)
	vol := c.volume.MustJSON(202, c.volume.Do(c.token, "POST", "/v3/"+c.project+"/volumes", `{"volume": {"size": 1, "name": "edge"}}`))
	c.volumeID, _ = apitest.Dig(vol, "volume", "id").(string)
	if c.imageID == "" || c.typID == "" || c.volumeID == "" {
		t.Fatalf("fixtures: image %q type %q volume %q", c.imageID, c.typID, c.volumeID)
	}
	return c
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

// expand replaces {p}, {img}, {vol}, {type} and {user} in s with the
// cluster's ids.
func (c *cluster) expand(s string) string {
	return strings.NewReplacer("{p}", c.project, "{img}", c.imageID, "{vol}", c.volumeID,
		"{type}", c.typID, "{user}", c.userID).Replace(s)
}
