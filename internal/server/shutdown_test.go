package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/identity"
)

// SIGTERM (a cancelled Run context) stops new connections but lets an
// upload that is already streaming finish and succeed.
func TestShutdownLetsInFlightUploadFinish(t *testing.T) {
	t.Setenv(identity.EnvAdminPassword, "shutdown-test-pw")
	cfg := testConfig(t, "sqlite:///"+t.TempDir()+"/a.db")
	srv, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx, func() { close(ready) }) }()
	<-ready

	token := adminToken(t, "http://"+cfg.Identity.Bind)
	img := "http://" + cfg.Image.Bind
	req, _ := http.NewRequest("POST", img+"/v2/images",
		strings.NewReader(`{"name": "inflight", "disk_format": "raw", "container_format": "bare"}`))
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create image: %v %v", resp, err)
	}
	var created struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()

	// Start the upload, send half the body, then shut down.
	body, w := io.Pipe()
	const half = 4 << 20
	put, _ := http.NewRequest("PUT", img+"/v2/images/"+created.ID+"/file", body)
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
	for deadline := time.Now().Add(10 * time.Second); ; {
		var status string
		_ = srv.DB().QueryRowContext(context.Background(), "SELECT status FROM images WHERE id = ?", created.ID).Scan(&status)
		if status == "saving" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("image never reached saving (status %q)", status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	// New connections are refused once shutdown has begun.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", cfg.Image.Bind, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("image listener still accepting 5 s after shutdown began")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) while an upload was in flight", err)
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
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(ShutdownTimeout):
		t.Fatal("Run did not return after the in-flight upload finished")
	}
	// The upload really landed: the image is active in the default store.
	var status string
	if err := srv.DB().QueryRowContext(context.Background(), "SELECT status FROM images WHERE id = ?", created.ID).Scan(&status); err != nil || status != "active" {
		t.Errorf("image status after shutdown = %q, %v; want active", status, err)
	}
}

func adminToken(t *testing.T, identityURL string) string {
	t.Helper()
	body := `{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin",
		"domain": {"name": "Default"}, "password": "shutdown-test-pw"}}},
		"scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}`
	resp, err := http.Post(identityURL+"/v3/auth/tokens", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	tok := resp.Header.Get("X-Subject-Token")
	if resp.StatusCode != http.StatusCreated || tok == "" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("token: %d %s", resp.StatusCode, b)
	}
	return tok
}
