// Package apitest is the one HTTP test harness of the three APIs: a client
// that sends a request as a token to a handler (in-process, through
// httptest) or to a running server, and the response it got back.
package apitest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Client sends requests to Handler, or to URL when it is set (a real
// listener, for tests that need streaming or connection behaviour).
type Client struct {
	T       testing.TB
	Handler http.Handler
	URL     string
	// HTTP is the client used with URL (http.DefaultClient when nil).
	HTTP *http.Client
	// Header is set on every request before the per-call headers.
	Header http.Header
}

// Resp is a complete response.
type Resp struct {
	Code   int
	Header http.Header
	Body   []byte
}

// JSON decodes the body as a JSON object, failing the test otherwise.
func (r Resp) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("status %d, body %q: %v", r.Code, r.Body, err)
	}
	return m
}

// Do sends method path as token (none when empty). body is nil, a string
// (JSON text), []byte or an io.Reader (application/octet-stream), or any
// other value (JSON-encoded). hdr are name, value pairs.
func (c *Client) Do(token, method, path string, body any, hdr ...string) Resp {
	c.T.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(b), "application/json"
	case []byte:
		rd, ct = bytes.NewReader(b), "application/octet-stream"
	case io.Reader:
		rd, ct = b, "application/octet-stream"
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			c.T.Fatal(err)
		}
		rd, ct = bytes.NewReader(buf), "application/json"
	}
	var req *http.Request
	if c.URL != "" {
		var err error
		if req, err = http.NewRequest(method, strings.TrimSuffix(c.URL, "/")+path, rd); err != nil {
			c.T.Fatal(err)
		}
	} else {
		req = httptest.NewRequest(method, path, rd)
	}
	for k, vs := range c.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if c.URL == "" {
		w := httptest.NewRecorder()
		c.Handler.ServeHTTP(w, req)
		return Resp{w.Code, w.Header(), w.Body.Bytes()}
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		c.T.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.T.Fatal(err)
	}
	return Resp{res.StatusCode, res.Header, b}
}

// Must fails the test unless r has status code, and returns r.
func (c *Client) Must(code int, r Resp) Resp {
	c.T.Helper()
	if r.Code != code {
		c.T.Fatalf("status %d, want %d: %s", r.Code, code, r.Body)
	}
	return r
}

// MustJSON is Must that decodes the body (nil when it is empty).
func (c *Client) MustJSON(code int, r Resp) map[string]any {
	c.T.Helper()
	c.Must(code, r)
	if len(r.Body) == 0 {
		return nil
	}
	return r.JSON(c.T)
}

// Dig walks nested JSON objects by key; nil when a step is missing.
func Dig(m any, path ...string) any {
	for _, k := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[k]
	}
	return m
}

// Eventually polls cond every 20 ms until it returns true or timeout passes,
// then fails the test with what describe says of the last state.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %s", timeout, describe())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
