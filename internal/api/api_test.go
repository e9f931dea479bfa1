package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

func TestErrorBodies(t *testing.T) {
	notFound := errs.E(errs.NotFound, "Volume abc could not be found.")
	tests := []struct {
		name   string
		flavor Flavor
		accept string
		err    error
		status int
		ctype  string
		body   string
	}{
		{"cinder", Cinder, "", notFound, 404, "application/json",
			`{"itemNotFound":{"code":404,"message":"Volume abc could not be found."}}`},
		{"cinder 500 hides internals", Cinder, "", io.ErrUnexpectedEOF, 500, "application/json",
			`{"computeFault":{"code":500,"message":"The server has either erred or is incapable of performing the requested operation."}}`},
		{"keystone", Keystone, "", errs.E(errs.Unauthorized, "The request you have made requires authentication."), 401, "application/json",
			`{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}`},
		{"glance json", Glance, "application/json", errs.E(errs.NotFound, "No image found with ID x"), 404, "application/json",
			`{"code":"404 Not Found","message":"No image found with ID x\u003cbr /\u003e\u003cbr /\u003e\n\n\n","title":"Not Found"}`},
		{"glance plain", Glance, "", &errs.Error{Kind: errs.Forbidden, Msg: "Access was denied to this resource.", Detail: "Attribute 'os_glance_foo' is reserved."}, 403,
			"text/plain; charset=UTF-8", "403 Forbidden\n\nAccess was denied to this resource.\nAttribute 'os_glance_foo' is reserved.\n\n   "},
		{"glance html", Glance, "*/*", errs.E(errs.Gone, "Error in store configuration. Adding images to store is disabled."), 410,
			"text/html; charset=UTF-8", "<html>\n <head>\n  <title>410 Gone</title>\n </head>\n <body>\n  <h1>410 Gone</h1>\n  Error in store configuration. Adding images to store is disabled.<br /><br />\n\n\n\n </body>\n</html>"},
		{"glance 413 title", Glance, "application/json", errs.E(errs.TooLarge, "big"), 413, "application/json",
			`{"code":"413 Request Entity Too Large","message":"big\u003cbr /\u003e\u003cbr /\u003e\n\n\n","title":"Request Entity Too Large"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.accept != "" {
				r.Header.Set("Accept", tt.accept)
			}
			w := httptest.NewRecorder()
			WriteError(w, r, tt.flavor, tt.err)
			if w.Code != tt.status || w.Header().Get("Content-Type") != tt.ctype || w.Body.String() != tt.body {
				t.Errorf("got %d %q\n%q\nwant %d %q\n%q", w.Code, w.Header().Get("Content-Type"), w.Body.String(), tt.status, tt.ctype, tt.body)
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	type body struct {
		Name string `json:"name"`
	}
	tests := []struct {
		name string
		in   string
		kind errs.Kind
	}{
		{"ok", `{"name": "x"}`, -1},
		{"malformed", `{"name": `, errs.Invalid},
		{"empty", ``, errs.Invalid},
		{"wrong type", `{"name": 5}`, errs.Invalid},
		{"trailing", `{"name": "x"} {}`, errs.Invalid},
		{"too large", `{"name": "` + strings.Repeat("a", 200) + `"}`, errs.TooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b body
			err := DecodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(tt.in)), &b, 100)
			if tt.kind == -1 {
				if err != nil || b.Name != "x" {
					t.Errorf("DecodeJSON = %v, %+v", err, b)
				}
				return
			}
			if errs.KindOf(err) != tt.kind {
				t.Errorf("kind = %v (%v), want %v", errs.KindOf(err), err, tt.kind)
			}
		})
	}
}

func TestWrap(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	mux := NewMux()
	mux.HandleFunc("GET /v3/{project_id}/volumes/{id}", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, 200, map[string]string{"id": r.PathValue("id")})
	})
	mux.HandleFunc("GET /boom", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	h := Wrap("volume", mux, slog.New(slog.NewTextHandler(io.Discard, nil)), m, Cinder)
	srv := httptest.NewServer(h)
	defer srv.Close()

	for _, path := range []string{"/v3/p/volumes/1", "/v3/p/volumes/2", "/healthcheck", "/boom", "/nothing"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if id := resp.Header.Get("X-Openstack-Request-Id"); !strings.HasPrefix(id, "req-") || len(id) != 40 {
			t.Errorf("%s: request id %q", path, id)
		}
		switch path {
		case "/healthcheck":
			if resp.StatusCode != 200 || string(b) != "OK" {
				t.Errorf("healthcheck: %d %q", resp.StatusCode, b)
			}
		case "/boom":
			var e map[string]map[string]any
			if resp.StatusCode != 500 || json.Unmarshal(b, &e) != nil || e["computeFault"] == nil {
				t.Errorf("panic: %d %s", resp.StatusCode, b)
			}
		}
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("volume", "GET /v3/{project_id}/volumes/{id}", "GET", "200")); got != 2 {
		t.Errorf("route counter = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("volume", "unmatched", "GET", "404")); got != 1 {
		t.Errorf("unmatched counter = %v, want 1", got)
	}
}

// Every kind but Other has a status of its own, which KindOfStatus maps
// back; other 5xx are Unavailable, other statuses Other.
func TestStatusOfAndBack(t *testing.T) {
	seen := map[int]bool{}
	for k := errs.Invalid; k <= errs.Unavailable; k++ {
		s := StatusOf(k)
		if s < 400 || s >= 600 || seen[s] || KindOfStatus(s) != k {
			t.Errorf("%v: status %d, back to %v", k, s, KindOfStatus(s))
		}
		seen[s] = true
	}
	if s := StatusOf(errs.Other); s != http.StatusInternalServerError {
		t.Errorf("Other: %d", s)
	}
	for status, want := range map[int]errs.Kind{500: errs.Unavailable, 502: errs.Unavailable, 418: errs.Other, 429: errs.Other} {
		if got := KindOfStatus(status); got != want {
			t.Errorf("KindOfStatus(%d) = %v, want %v", status, got, want)
		}
	}
}
