package loopback_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/api/loopback"
)

// echo answers with what it saw, and streams n bytes for GET /data?n=.
func echo() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /objects/{id}", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Seen", strings.Join([]string{r.PathValue("id"), r.URL.Query().Get("q"),
			r.Header.Get("X-Auth-Token"), r.Host, r.RequestURI}, " "))
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, hex.EncodeToString(h.Sum(nil)))
		_ = n
	})
	mux.HandleFunc("GET /data", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "67108864")
		buf := bytes.Repeat([]byte{7}, 1<<20)
		for range 64 {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("DELETE /objects/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // until the caller gives up
	})
	mux.HandleFunc("GET /panic", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	return mux
}

func client(next http.RoundTripper) *http.Client {
	return &http.Client{Transport: &loopback.Transport{
		Hosts: loopback.Hosts("127.0.0.1:9292", "http://images.example"), Handler: echo(), Next: next}}
}

func TestServesLocalHostsInProcess(t *testing.T) {
	c := client(nil)
	data := bytes.Repeat([]byte("ashlar"), 3<<20)
	for _, base := range []string{"http://127.0.0.1:9292", "http://images.example"} {
		req, _ := http.NewRequest("PUT", base+"/objects/a%2Fb?q=1", bytes.NewReader(data))
		req.Header.Set("X-Auth-Token", "tok")
		req.Header.Set("Expect", "100-continue")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		sum := sha256.Sum256(data)
		host := strings.TrimPrefix(base, "http://")
		if resp.StatusCode != 201 || string(body) != hex.EncodeToString(sum[:]) ||
			resp.Header.Get("X-Seen") != "a/b 1 tok "+host+" /objects/a%2Fb?q=1" || resp.Header.Get("Content-Type") != "text/plain" {
			t.Errorf("%s: %d %q %q", base, resp.StatusCode, body, resp.Header.Get("X-Seen"))
		}
	}
}

func TestStreamsResponses(t *testing.T) {
	resp, err := client(nil).Get("http://127.0.0.1:9292/data")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != 64<<20 {
		t.Errorf("ContentLength = %d", resp.ContentLength)
	}
	// A reader that stops early must not hang the handler.
	first := make([]byte, 1000)
	if _, err := io.ReadFull(resp.Body, first); err != nil || first[0] != 7 {
		t.Fatalf("%v %v", first[0], err)
	}
	resp.Body.Close()
	resp, err = client(nil).Get("http://127.0.0.1:9292/data")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != 64<<20 {
		t.Fatalf("read %d, %v", n, err)
	}
}

func TestStatusesWithoutBody(t *testing.T) {
	c := client(nil)
	for _, tc := range []struct {
		method, path string
		status       int
	}{{"DELETE", "/objects/x", 204}, {"GET", "/empty", 200}, {"HEAD", "/data", 200}, {"GET", "/nowhere", 404}} {
		req, _ := http.NewRequest(tc.method, "http://127.0.0.1:9292"+tc.path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || err != nil || (tc.method != "GET" && len(b) != 0) {
			t.Errorf("%s %s: %d, %d bytes, %v", tc.method, tc.path, resp.StatusCode, len(b), err)
		}
	}
}

func TestOtherHostsGoToTheNetwork(t *testing.T) {
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "remote")
	}))
	defer remote.Close()
	resp, err := client(remote.Client().Transport).Get(remote.URL + "/data")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "remote" {
		t.Fatalf("got %q, want the remote server's answer", b)
	}
}

func TestCancelAndPanic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://127.0.0.1:9292/slow", nil)
	if _, err := client(nil).Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow handler, caller's deadline: err = %v", err)
	}
	if _, err := client(nil).Get("http://127.0.0.1:9292/panic"); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("panicking handler: err = %v", err)
	}
}

func TestHosts(t *testing.T) {
	got := loopback.Hosts("127.0.0.1:9292", "http://a.example", "https://b.example/v2", "", "http://[::1]:80/")
	for _, want := range []string{"127.0.0.1:9292", "a.example:80", "b.example:443", "[::1]:80"} {
		if !got[want] {
			t.Errorf("Hosts lacks %s: %v", want, got)
		}
	}
	if len(got) != 4 {
		t.Errorf("Hosts = %v", got)
	}
}
