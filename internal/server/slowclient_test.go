package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/identity"
)

// dialSend opens a connection to addr and writes s on it.
func dialSend(t *testing.T, addr, s string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
	return c
}

// closedBy reads c until the server closes it and returns when that was
// and what the server sent; it fails the test if c is still open at
// deadline.
func closedBy(t *testing.T, c net.Conn, deadline time.Time) (time.Time, string) {
	t.Helper()
	_ = c.SetReadDeadline(deadline)
	b, err := io.ReadAll(c)
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("connection from %s still open at its deadline", c.LocalAddr())
	}
	return time.Now(), string(b)
}

// Clients that send their headers and part of a JSON body, or part of
// their headers, and then stall are disconnected by every service within
// the configured timeouts (the probe found 300 of 300 such connections
// still open after 90 s); an idle keep-alive connection is closed after
// client_socket_timeout; and an image upload that is slow but keeps
// sending is not cut by the JSON body deadline.
func TestStalledClientsAreCut(t *testing.T) {
	t.Setenv(identity.EnvAdminPassword, adminPassword)
	cfg := testConfig(t, "sqlite:///"+t.TempDir()+"/a.db",
		"client_header_timeout = 1", "client_body_timeout = 1", "client_socket_timeout = 3")
	serve(t, cfg)
	token := adminToken(t, "http://"+cfg.Identity.Bind)
	ids := &apitest.Client{T: t, URL: "http://" + cfg.Identity.Bind}
	images := &apitest.Client{T: t, URL: "http://" + cfg.Image.Bind}
	project, _ := apitest.Dig(ids.MustJSON(200, ids.Do(token, "GET", "/v3/auth/tokens", nil, "X-Subject-Token", token)),
		"token", "project", "id").(string)

	const perKind = 50
	start := time.Now()
	// 300 connections from 127.0.0.1, more than max_connections_per_client:
	// loopback is exempt by default, so every one is served.
	var stalled []net.Conn
	for _, svc := range []struct{ addr, path string }{
		{cfg.Identity.Bind, "/v3/auth/tokens"},
		{cfg.Image.Bind, "/v2/images"},
		{cfg.Volume.Bind, "/v3/" + project + "/volumes"},
	} {
		for range perKind {
			stalled = append(stalled, dialSend(t, svc.addr, "POST "+svc.path+" HTTP/1.1\r\nHost: x\r\nX-Auth-Token: "+token+
				"\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"name\": \"stal"))
			stalled = append(stalled, dialSend(t, svc.addr, "POST "+svc.path+" HTTP/1.1\r\nHost: x\r\nX-Auth-To"))
		}
	}
	idle := dialSend(t, cfg.Image.Bind, "GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n")
	idleSince := time.Now()
	if r, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil || r.StatusCode != 200 {
		t.Fatalf("healthcheck on the idle connection: %v %v", r, err)
	}

	// A 16-byte upload, one byte every 250 ms: 4 s, four body timeouts.
	img := images.MustJSON(201, images.Do(token, "POST", "/v2/images", `{"name": "slow", "disk_format": "raw", "container_format": "bare"}`))
	var uploadStatus string
	var wg sync.WaitGroup
	wg.Go(func() {
		up, err := net.Dial("tcp", cfg.Image.Bind)
		if err != nil {
			uploadStatus = err.Error()
			return
		}
		defer up.Close()
		fmt.Fprintf(up, "PUT /v2/images/%s/file HTTP/1.1\r\nHost: x\r\nX-Auth-Token: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: 16\r\n\r\n", img["id"], token)
		for range 16 {
			time.Sleep(250 * time.Millisecond)
			if _, err := up.Write([]byte{'x'}); err != nil {
				uploadStatus = "write: " + err.Error()
				return
			}
		}
		r, err := http.ReadResponse(bufio.NewReader(up), nil)
		if err != nil {
			uploadStatus = err.Error()
			return
		}
		uploadStatus = r.Status
	})

	// 1 s timeouts; the slack is for a loaded 2-core machine.
	deadline := start.Add(6 * time.Second)
	var last time.Time
	for i, c := range stalled {
		at, got := closedBy(t, c, deadline)
		if at.After(last) {
			last = at
		}
		// the partial JSON bodies (even indexes) are answered before the
		// connection is closed
		if i%2 == 0 && !strings.HasPrefix(got, "HTTP/1.1 400 ") {
			t.Errorf("stalled JSON body %d: answered %q, want a 400", i/2, got)
		}
	}
	t.Logf("%d stalled connections closed within %v", len(stalled), last.Sub(start).Round(time.Millisecond))
	if at, _ := closedBy(t, idle, idleSince.Add(8*time.Second)); at.Sub(idleSince) < 2*time.Second {
		t.Errorf("idle connection closed after %v, before client_socket_timeout", at.Sub(idleSince))
	}
	wg.Wait()
	if uploadStatus != "204 No Content" {
		t.Fatalf("slow upload: %s", uploadStatus)
	}
	got := images.MustJSON(200, images.Do(token, "GET", fmt.Sprint("/v2/images/", img["id"]), nil))
	if got["status"] != "active" || got["size"] != float64(16) {
		t.Errorf("slowly uploaded image: %v", got)
	}
}

// One client may hold at most max_connections_per_client connections
// across the listeners; more are closed on accept (and counted), and a
// slot is free again once one of them is closed. Loopback is exempt by
// default, so the cap is tested with an empty exempt list.
func TestConnectionCapPerClient(t *testing.T) {
	t.Setenv(identity.EnvAdminPassword, adminPassword)
	cfg := testConfig(t, "sqlite:///"+t.TempDir()+"/a.db",
		"max_connections_per_client = 3", "connection_limit_exempt =")
	serve(t, cfg)

	healthcheck := func(addr string) (net.Conn, error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n")
		r, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			return nil, err
		}
		r.Body.Close()
		_ = c.SetDeadline(time.Time{})
		return c, nil
	}
	// three kept-alive connections, to two different listeners
	var held []net.Conn
	for _, addr := range []string{cfg.Image.Bind, cfg.Volume.Bind, cfg.Volume.Bind} {
		c, err := healthcheck(addr)
		if err != nil {
			t.Fatalf("connection %d: %v", len(held)+1, err)
		}
		defer c.Close()
		held = append(held, c)
	}
	if c, err := healthcheck(cfg.Identity.Bind); err == nil {
		c.Close()
		t.Fatal("a fourth connection was served")
	}
	held[0].Close()
	var c net.Conn
	apitest.Eventually(t, 5*time.Second, func() bool {
		var err error
		c, err = healthcheck(cfg.Identity.Bind)
		return err == nil
	}, func() string { return "no connection served after one of the three was closed" })
	c.Close()

	for _, h := range held[1:] {
		h.Close()
	}
	var metrics string
	apitest.Eventually(t, 5*time.Second, func() bool {
		hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := hc.Get("http://" + cfg.Default.MetricsBind + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		metrics = string(b)
		return strings.Contains(metrics, "ashlar_http_connections_refused_total")
	}, func() string { return "metrics unreachable or without the refusal counter" })
	// at least the fourth connection; the retries above may add more
	if m := regexp.MustCompile(`(?m)^ashlar_http_connections_refused_total (\d+)$`).FindStringSubmatch(metrics); m == nil || m[1] == "0" {
		t.Errorf("refusals not counted: %v", m)
	}
}
