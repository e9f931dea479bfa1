package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/identity"
	"github.com/ashlar-dev/ashlar/internal/image/store/drivers"
)

// The volume service reaches the image service of its own process without
// a socket: with the image service's public URL pointing at a port nothing
// listens on, upload-to-image still lands the image, since requests for
// that host are served in-process (internal/api/loopback); and a store
// failure comes back through it as it would over HTTP: the image is
// deleted, the volume is available again and a user message says why.
func TestVolumeUploadReachesOwnImageServiceInProcess(t *testing.T) {
	t.Setenv(identity.EnvAdminPassword, "shutdown-test-pw")
	nowhere := freePort(t) // closed again: connecting there is refused
	state := t.TempDir()
	text := fmt.Sprintf(`[DEFAULT]
metrics_bind =
[database]
connection = sqlite:///%s/a.db
[identity]
bind = %s
[image]
bind = %s
public_url = http://%s
[volume]
bind = %s
`, t.TempDir(), freePort(t), freePort(t), nowhere, freePort(t))
	// as serve loads it: the drivers resolve their options (the default
	// store's directory, removed below)
	cfg, err := config.Parse(text, state, drivers.Check)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, stop := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- srv.Run(ctx, func() { close(ready) }) }()
	defer func() { stop(); <-done }()
	<-ready
	if c, err := net.DialTimeout("tcp", nowhere, time.Second); err == nil {
		c.Close()
		t.Skipf("something listens on %s", nowhere)
	}

	token := adminToken(t, "http://"+cfg.Identity.Bind)
	vol := "http://" + cfg.Volume.Bind + "/v3"
	call := func(method, url, body string, want int, out any) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("X-Auth-Token", token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("OpenStack-API-Version", "volume 3.67") // project-less URLs
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor := func(url, key, want string) map[string]any {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; {
			var body map[string]any
			call("GET", url, "", 200, &body)
			obj := body
			if key != "" {
				obj, _ = body[key].(map[string]any)
			}
			if obj["status"] == want {
				return obj
			}
			if s := obj["status"]; s == "error" || s == "killed" || time.Now().After(deadline) {
				t.Fatalf("%s: status %v, want %s", url, s, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	upload := func(volID, name string) string {
		t.Helper()
		var up struct {
			Upload struct {
				ImageID string `json:"image_id"`
			} `json:"os-volume_upload_image"`
		}
		call("POST", vol+"/volumes/"+volID+"/action", `{"os-volume_upload_image": {"image_name": "`+name+
			`", "disk_format": "qcow2", "container_format": "bare"}}`, 202, &up)
		return up.Upload.ImageID
	}

	var created struct{ Volume struct{ ID string } }
	call("POST", vol+"/volumes", `{"volume": {"size": 1, "name": "in-process"}}`, 202, &created)
	volURL := vol + "/volumes/" + created.Volume.ID
	waitFor(volURL, "volume", "available")

	t.Run("upload lands", func(t *testing.T) {
		id := upload(created.Volume.ID, "in-process")
		img := waitFor("http://"+cfg.Image.Bind+"/v2/images/"+id, "", "active")
		if img["stores"] != "fast" || img["disk_format"] != "qcow2" || img["size"].(float64) <= 0 || img["checksum"] == nil {
			t.Errorf("image = %v", img)
		}
		waitFor(volURL, "volume", "available")
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
		id := upload(created.Volume.ID, "doomed")
		for deadline := time.Now().Add(60 * time.Second); ; {
			req, _ := http.NewRequest("GET", "http://"+cfg.Image.Bind+"/v2/images/"+id, nil)
			req.Header.Set("X-Auth-Token", token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				break // deleted after the failed upload
			}
			if time.Now().After(deadline) {
				t.Fatalf("image %s still there (%d) after the store failed", id, resp.StatusCode)
			}
			time.Sleep(20 * time.Millisecond)
		}
		waitFor(volURL, "volume", "available")
		var msgs struct {
			Messages []map[string]any `json:"messages"`
		}
		call("GET", vol+"/messages", "", 200, &msgs)
		found := false
		for _, m := range msgs.Messages {
			// VOLUME_003: copy volume to image; 004: failed at the backend
			if m["resource_uuid"] == created.Volume.ID && m["event_id"] == "VOLUME_VOLUME_003_004" {
				found = true
			}
		}
		if !found {
			t.Errorf("no upload-failure message for volume %s: %v", created.Volume.ID, msgs.Messages)
		}
	})
}
