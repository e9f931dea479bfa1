package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// echoMux answers every route it knows with 200 and the values it was given.
func echoMux() *Mux {
	m := NewMux()
	m.HandleFunc("GET /v2/images/{id}", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, 200, map[string]any{"id": r.PathValue("id"), "q": r.URL.Query()})
	})
	m.HandleFunc("POST /v2/images", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, 201, map[string]any{})
	})
	return m
}

// NUL characters and non-UTF-8 bytes in the path, the query and the
// OpenStack headers are refused before the handler, with a 400 in the
// API's own dialect; clean requests and other headers pass.
func TestWrapRefusesBadBytes(t *testing.T) {
	flavors := []struct {
		name   string
		flavor Flavor
		// isBadRequest checks the error body's shape.
		isBadRequest func(b []byte) bool
	}{
		{"cinder", Cinder, func(b []byte) bool {
			var e map[string]map[string]any
			return json.Unmarshal(b, &e) == nil && e["badRequest"]["code"] == float64(400)
		}},
		{"glance", Glance, func(b []byte) bool { return strings.HasPrefix(string(b), "400 Bad Request\n\n") }},
		{"keystone", Keystone, func(b []byte) bool {
			var e map[string]map[string]any
			return json.Unmarshal(b, &e) == nil && e["error"]["code"] == float64(400) && e["error"]["title"] == "Bad Request"
		}},
	}
	tests := []struct {
		name, path string
		hdr        []string
		status     int
		msg        string
	}{
		{"clean", "/v2/images/abc?name=caf%C3%A9", nil, 200, ""},
		{"NUL in path", "/v2/images/a%00b", nil, 400, "NUL characters are not allowed in the URL."},
		{"FF in path", "/v2/images/a%FFb", nil, 400, "Error decoding your request."},
		{"NUL in query value", "/v2/images/abc?name=x%00", nil, 400, `query parameter "name"`},
		{"NUL in query name", "/v2/images/abc?na%00me=x", nil, 400, `query parameter "na`},
		{"FF in query value", "/v2/images/abc?marker=%FF", nil, 400, "Error decoding your request."},
		{"FF in query name", "/v2/images/abc?%FF=1", nil, 400, "Error decoding your request."},
		{"FF in store header", "/v2/images/abc", []string{"X-Image-Meta-Store", "\xff"}, 400, "Invalid value for header X-Image-Meta-Store"},
		{"NUL in token header", "/v2/images/abc", []string{"X-Auth-Token", "a\x00b"}, 400, "Invalid value for header X-Auth-Token"},
		{"FF in version header", "/v2/images/abc", []string{"OpenStack-API-Version", "volume 3.\xff"}, 400, "Invalid value for header Openstack-Api-Version"},
		{"FF in user agent passes", "/v2/images/abc", []string{"User-Agent", "caf\xe9"}, 200, ""},
	}
	for _, fl := range flavors {
		h := Wrap("test", echoMux(), quiet(), nil, fl.flavor)
		for _, tt := range tests {
			t.Run(fl.name+"/"+tt.name, func(t *testing.T) {
				r := httptest.NewRequest("GET", tt.path, nil)
				for i := 0; i < len(tt.hdr); i += 2 {
					r.Header.Set(tt.hdr[i], tt.hdr[i+1])
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != tt.status {
					t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
				}
				if tt.status != 400 {
					return
				}
				if !fl.isBadRequest(w.Body.Bytes()) || !strings.Contains(unquote(w.Body.String()), tt.msg) {
					t.Errorf("body %q: not a %s 400 saying %q", w.Body, fl.name, tt.msg)
				}
			})
		}
	}
}

// unquote undoes the JSON escaping of quotes, so that one expected
// message matches the JSON and the plain text bodies.
func unquote(body string) string { return strings.ReplaceAll(body, `\"`, `"`) }

// The message for undecodable bytes is the one Cinder and Glance give
// (webob's UnicodeDecodeError), naming the service.
func TestDecodeErrorNamesTheService(t *testing.T) {
	for f, want := range map[Flavor]string{
		Cinder:   "contained characters that could not be decoded by Cinder.",
		Glance:   "contained characters that could not be decoded by Glance",
		Keystone: "contained characters that could not be decoded by Keystone.",
	} {
		if got := decodeError(f).Error(); !strings.HasSuffix(got, want) {
			t.Errorf("%v: %q", f, got)
		}
	}
}

// Without Wrap the checks do not run (a handler tested alone keeps its
// own behaviour), and FlavorOf says so.
func TestFlavorOfOutsideWrap(t *testing.T) {
	if _, ok := FlavorOf(httptest.NewRequest("GET", "/", nil).Context()); ok {
		t.Error("FlavorOf outside Wrap reports a flavor")
	}
}

// A path no route takes is a 404, a method the path does not take (TRACE)
// a 405 with Allow, both in the API's dialect; ServeMux's redirect to the
// cleaned path is left as it is.
func TestMuxUnmatchedInDialect(t *testing.T) {
	tests := []struct {
		flavor       Flavor
		method, path string
		status       int
		ctype, body  string
	}{
		{Cinder, "TRACE", "/v2/images/x", 405, "application/json", `{"badMethod":{"code":405,"message":"The method TRACE is not allowed for this resource."}}`},
		{Cinder, "GET", "/nothing", 404, "application/json", `{"itemNotFound":{"code":404,"message":"The resource could not be found."}}`},
		{Glance, "TRACE", "/v2/images", 405, "text/plain; charset=UTF-8", "405 Method Not Allowed\n\nThe method TRACE is not allowed for this resource.\n\n\n   "},
		{Glance, "DELETE", "/nothing", 404, "text/plain; charset=UTF-8", "404 Not Found\n\nThe resource could not be found.\n\n\n   "},
		{Keystone, "TRACE", "/v2/images/x", 405, "application/json", `{"error":{"code":405,"message":"The method is not allowed for the requested URL.","title":"Method Not Allowed"}}`},
		{Keystone, "GET", "/nothing", 404, "application/json", `{"error":{"code":404,"message":"The resource could not be found.","title":"Not Found"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.flavor.product()+" "+tt.method+" "+tt.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			Wrap("test", echoMux(), quiet(), nil, tt.flavor).ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, nil))
			if w.Code != tt.status || w.Header().Get("Content-Type") != tt.ctype || w.Body.String() != tt.body {
				t.Errorf("got %d %q %q\nwant %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body, tt.status, tt.ctype, tt.body)
			}
			if tt.status == 405 && w.Header().Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
	w := httptest.NewRecorder()
	Wrap("test", echoMux(), quiet(), nil, Cinder).ServeHTTP(w, httptest.NewRequest("GET", "/v2//images/x", nil))
	if w.Code != http.StatusTemporaryRedirect || w.Header().Get("Location") != "/v2/images/x" {
		t.Errorf("unclean path: %d %v", w.Code, w.Header())
	}
}

// stallServer serves h behind Wrap with the given body timeout on a real
// listener (deadlines need a connection).
func stallServer(t *testing.T, h http.Handler, timeout time.Duration) string {
	t.Helper()
	srv := httptest.NewServer(Wrap("test", h, quiet(), nil, Cinder, BodyTimeout(timeout)))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// sendPartial opens a connection, sends head and part of a body of the
// declared length, and returns the connection (the client then stalls).
func sendPartial(t *testing.T, addr, head, part string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head+part); err != nil {
		t.Fatal(err)
	}
	return c
}

// closedWithin waits until the server ends the connection (EOF or reset
// after whatever response it sent), failing after limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(limit))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v (read %q)", limit, b)
	}
	return string(b)
}

func post(path, ctype string, length int) string {
	return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: " + ctype + "\r\nContent-Length: " + strconv.Itoa(length) + "\r\n\r\n"
}

// A client that sends part of a JSON body and stalls is cut off after the
// body timeout: in DecodeJSON (answered 400) whatever Content-Type it
// claims, in any other reader of a non-data body, and when the handler
// never reads the body (net/http's drain after it); a data body is not
// given the JSON deadline, so a slow but progressing one goes through; and
// a handler still working after the body is in is not cancelled when the
// deadline would have passed.
func TestBodyTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	m := NewMux()
	m.HandleFunc("POST /json", func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if err := DecodeJSON(r, &v, 0); err != nil {
			WriteError(w, r, Cinder, err)
			return
		}
		time.Sleep(3 * timeout) // past the deadline the body had
		if err := r.Context().Err(); err != nil {
			WriteJSON(w, 500, map[string]string{"ctx": err.Error()})
			return
		}
		WriteJSON(w, 200, v)
	})
	m.HandleFunc("POST /ignore", func(w http.ResponseWriter, r *http.Request) { WriteJSON(w, 401, map[string]any{}) })
	m.HandleFunc("POST /raw", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			WriteJSON(w, 400, map[string]string{"err": err.Error()})
			return
		}
		WriteJSON(w, 200, map[string]any{})
	})
	m.HandleFunc("PUT /data", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			WriteJSON(w, 400, map[string]string{"err": err.Error()})
			return
		}
		WriteJSON(w, 200, map[string]int64{"n": n})
	})
	addr := stallServer(t, m, timeout)

	t.Run("partial JSON is cut", func(t *testing.T) {
		start := time.Now()
		var conns []net.Conn
		for range 20 {
			conns = append(conns, sendPartial(t, addr, post("/json", "application/json", 100), `{"name": "x`))
		}
		for _, c := range conns {
			if got := closedWithin(t, c, timeout+2*time.Second); !strings.HasPrefix(got, "HTTP/1.1 400") {
				t.Errorf("response %q, want a 400", got)
			}
		}
		if d := time.Since(start); d < timeout {
			t.Errorf("closed after %v, before the timeout", d)
		}
	})
	t.Run("partial JSON read without DecodeJSON is cut", func(t *testing.T) {
		c := sendPartial(t, addr, post("/raw", "application/json", 100), `{"name": "x`)
		if got := closedWithin(t, c, timeout+2*time.Second); !strings.HasPrefix(got, "HTTP/1.1 400") {
			t.Errorf("response %q, want a 400", got)
		}
	})
	t.Run("partial JSON labelled as data is cut", func(t *testing.T) {
		c := sendPartial(t, addr, post("/json", "application/octet-stream", 100), `{"name": "x`)
		closedWithin(t, c, timeout+2*time.Second)
	})
	t.Run("unread body is cut after the handler", func(t *testing.T) {
		c := sendPartial(t, addr, post("/ignore", "application/json", 100), `{"name": "x`)
		if got := closedWithin(t, c, timeout+2*time.Second); !strings.HasPrefix(got, "HTTP/1.1 401") {
			t.Errorf("response %q", got)
		}
	})
	t.Run("unread data body is cut after the handler", func(t *testing.T) {
		// an upload refused before its data is read (409, 413, ...)
		c := sendPartial(t, addr, post("/ignore", "application/octet-stream", 1000), "xxxx")
		if got := closedWithin(t, c, timeout+2*time.Second); !strings.HasPrefix(got, "HTTP/1.1 401") {
			t.Errorf("response %q", got)
		}
	})
	t.Run("stalled chunked JSON is cut", func(t *testing.T) {
		c := sendPartial(t, addr, "POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", "5\r\n{\"a\":")
		closedWithin(t, c, timeout+2*time.Second)
	})
	t.Run("whole JSON, slow handler", func(t *testing.T) {
		c := sendPartial(t, addr, post("/json", "application/json", 10), `{"a": "b"}`)
		r, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		if r.StatusCode != 200 || string(b) != `{"a":"b"}` {
			t.Errorf("%d %s", r.StatusCode, b)
		}
	})
	t.Run("slow data is not cut", func(t *testing.T) {
		const n = 12
		c := sendPartial(t, addr, "PUT /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: "+strconv.Itoa(n)+"\r\n\r\n", "")
		for range n {
			time.Sleep(timeout / 4) // n/4 timeouts in all
			if _, err := c.Write([]byte{'x'}); err != nil {
				t.Fatal(err)
			}
		}
		r, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		if r.StatusCode != 200 || string(b) != `{"n":12}` {
			t.Errorf("%d %s", r.StatusCode, b)
		}
	})
}

// DecodeJSON refuses a body that is not UTF-8 (encoding/json would have
// replaced the bytes with U+FFFD) and a NUL character in any key or string
// at any depth, naming the field; a literal backslash-u0000 text is fine.
func TestDecodeJSONRefusesNULAndBadUTF8(t *testing.T) {
	type image struct {
		Name string            `json:"name"`
		Tags []string          `json:"tags"`
		Meta map[string]string `json:"meta"`
	}
	tests := []struct {
		name, in string
		msg      string // "" when accepted
	}{
		{"clean", `{"name": "café", "tags": ["a"], "meta": {"k": "v"}}`, ""},
		{"escaped backslash", `{"name": "\\u0000"}`, ""},
		{"NUL in value", `{"name": "a\u0000b"}`, `field "name": NUL`},
		{"NUL in list", `{"tags": ["ok", "\u0000"]}`, `field "tags": NUL`},
		{"NUL in nested value", `{"meta": {"k": "\u0000"}}`, `field "k": NUL`},
		{"NUL in key", `{"meta": {"k\u0000": "v"}}`, `field "k\x00": NUL`},
		{"NUL in an ignored field", `{"other": [{"x": "\u0000"}]}`, `field "x": NUL`},
		{"invalid UTF-8 in a string", "{\"name\": \"caf\xe9\"}", "not UTF-8"},
		{"invalid UTF-8 in a key", "{\"n\xffame\": \"x\"}", "not UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v image
			err := DecodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(tt.in)), &v, 0)
			if tt.msg == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if errs.KindOf(err) != errs.Invalid || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v, want Invalid mentioning %q", err, tt.msg)
			}
		})
	}
}
