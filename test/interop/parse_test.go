package interop

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The parsers the scenarios assert through; these run without
// ASHLAR_INTEROP, so a harness bug shows in every test run.

func TestParseTable(t *testing.T) {
	out := `+----------+----------------------------------------------------------------------------------+
| Property | Value                                                                            |
+----------+----------------------------------------------------------------------------------+
| id       | 5f0e                                                                             |
| stores   | [{"id": "web", "description": "Read-only HTTP store", "read-   |
|          | only": "true"}, {"id": "fast", "description": "Fast   |
|          | store"}]                                                                  |
+----------+----------------------------------------------------------------------------------+
`
	m := parseTable(out)
	if m["id"] != "5f0e" {
		t.Errorf("id = %q", m["id"])
	}
	want := `[{"id": "web", "description": "Read-only HTTP store", "read-only": "true"}, {"id": "fast", "description": "Fast store"}]`
	if m["stores"] != want {
		t.Errorf("stores = %q\nwant     %q", m["stores"], want)
	}
	if _, ok := m["Property"]; ok {
		t.Error("header row parsed as a property")
	}
}

func TestRenderTemplate(t *testing.T) {
	src := "[a]\nx = ${X}\n# c = ${Y}\ny = ${Y}\n[b]\nz = 1"
	got := renderTemplate(t, src, map[string]string{"X": "1", "Y": ""})
	if want := "[a]\nx = 1\n# c = \n[b]\nz = 1"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestReadAccounts(t *testing.T) {
	accts := readAccounts(t)
	if len(accts) != 8 {
		t.Fatalf("%d accounts, want 8 (6 members, 2 admins)", len(accts))
	}
	admins := 0
	for _, a := range accts {
		if a.User == "" || a.Project == "" || a.Password == "" || a.Role == "" {
			t.Errorf("incomplete account %+v", a)
		}
		if a.Admin {
			admins++
			if a.Role != "admin" {
				t.Errorf("admin account %s has role %s", a.User, a.Role)
			}
		}
	}
	if admins != 2 {
		t.Errorf("%d admin accounts, want 2", admins)
	}
}

func TestImageField(t *testing.T) {
	img := map[string]any{"size": float64(1 << 30), "properties": map[string]any{"stores": "cheap,fast"}}
	if got := imageField(img, "size"); got != "1073741824" {
		t.Errorf("size = %q", got)
	}
	if got := imageField(img, "stores"); got != "cheap,fast" {
		t.Errorf("stores = %q", got)
	}
	if !sameSet("b,a", "a,b") || sameSet("a", "a,b") || strings.Contains(imageField(img, "nothing"), "nil") {
		t.Error("sameSet / missing field")
	}
}

// TestResponseScan runs the response scan's proxy against a fake service:
// a secret is found in a header, in a body split across many small writes
// (across the scan window's edge), in a JSON field (named) and in a JSON
// body that does not parse; the stores-detail allowance takes out exactly
// a file store's own data_dir in a 200.
func TestResponseScan(t *testing.T) {
	const dir = "/srv/ashlar/state/images/fast"
	// The state path holds the store directory: a field that names both
	// is listed once, under the store directory.
	s := newResponseScan([]secret{{"state path", "/srv/ashlar/state"}, {"store fast directory", dir}, {"S3 bucket", "bucket-7f3a"}, {"bind address", "127.0.0.1:1"}},
		[]allowance{allowFileStoreDirs(map[string]string{"fast": dir})})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/header":
			w.Header().Set("Location", "http://127.0.0.1:1/v2/images/x")
		case "/split":
			// 3 MiB of zeros, then the secret a few bytes at a time, each
			// sent on its own, so that the proxy reads it in pieces.
			w.Write(make([]byte, 3<<20))
			for b := []byte("file://" + dir + "/id"); len(b) > 0; b = b[min(3, len(b)):] {
				w.Write(b[:min(3, len(b))])
				w.(http.Flusher).Flush()
				time.Sleep(2 * time.Millisecond)
			}
		case "/escaped":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"direct_url": "file:\/\/`+strings.ReplaceAll(dir, "/", `\/`)+`\/id"}`)
		case "/notjson":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"bucket": "bucket-7f3a"`)
		case "/v2/info/stores/detail":
			w.Header().Set("Content-Type", "application/json")
			if r.Header.Get("X-Role") != "admin" {
				w.WriteHeader(http.StatusForbidden)
			}
			other := ""
			if r.URL.Query().Has("other") { // another store showing fast's directory
				other = fmt.Sprintf(`{"id": "other", "properties": {"data_dir": %q}}, `, dir)
			}
			fmt.Fprintf(w, `{"stores": [{"id": "fast", "type": "file", "properties": {"data_dir": %q}}, %s{"id": "cheap", "properties": {"s3_store_bucket": "bucket-7f3a"}}]}`, dir, other)
		case "/clean":
			w.Write(make([]byte, 1<<20))
		}
	}))
	defer backend.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := startScanProxy(t, "test", backend.URL, l, filepath.Join(t.TempDir(), "proxy.log"), s)
	get := func(path, role string) {
		req, _ := http.NewRequest("GET", p.url+path, nil)
		req.Header.Set("X-Role", role)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for _, path := range []string{"/header", "/split", "/escaped", "/notjson", "/v2/info/stores/detail", "/clean"} {
		get(path, "admin")
	}
	get("/v2/info/stores/detail?other", "admin")
	get("/v2/info/stores/detail", "member")
	lines, responses, _ := s.report()
	got := strings.Join(lines, "\n")
	for _, want := range []string{
		"GET /header: header Location names the bind address",
		"GET /split: body names the store fast directory",
		"GET /escaped: body direct_url names the store fast directory",
		"GET /notjson: body names the S3 bucket",
		// The allowance covers the fast store's own data_dir in a 200
		// only: the 403 and the other store's count.
		"GET /v2/info/stores/detail: body stores[].properties.s3_store_bucket names the S3 bucket (3 responses",
		"GET /v2/info/stores/detail: body stores[].properties.data_dir names the store fast directory (2 responses",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if len(lines) != 6 || strings.Contains(got, "/clean") || strings.Contains(got, "state path") || responses != 8 {
		t.Errorf("%d responses, report:\n%s", responses, got)
	}
}
