package api

import (
	"context"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

// This file holds what Wrap refuses or bounds before a service's handler
// runs, the same for the three APIs: bytes no handler should ever see, and
// clients that stop sending a request body.

// product names each flavor's service in messages.
func (f Flavor) product() string {
	switch f {
	case Glance:
		return "Glance"
	case Keystone:
		return "Keystone"
	}
	return "Cinder"
}

// FlavorOf returns the error dialect of the API serving the request ctx
// belongs to; ok is false outside Wrap.
func FlavorOf(ctx context.Context) (f Flavor, ok bool) {
	f, ok = ctx.Value(keyFlavor).(Flavor)
	return f, ok
}

// decodeError is how Cinder and Glance answer a URL or body that is not
// UTF-8 (webob raises UnicodeDecodeError, their fault handlers turn it into
// a 400 with this text; Glance's lacks the final period).
func decodeError(f Flavor) error {
	msg := "Error decoding your request. Either the URL or the request body contained characters that could not be decoded by " + f.product()
	if f != Glance {
		msg += "."
	}
	return errs.E(errs.Invalid, "%s", msg)
}

// checkText reports what is wrong with s as API input: a NUL character
// (PostgreSQL refuses it in text, and no OpenStack field can hold one) or
// bytes that are not UTF-8 (the Python services cannot decode them).
func checkText(s string) (nul, notUTF8 bool) {
	return strings.IndexByte(s, 0) >= 0, !utf8.ValidString(s)
}

// checkRequest refuses, before any handler or database sees them, NUL
// characters and non-UTF-8 bytes in the decoded path, the query parameters
// (names and values) and the OpenStack headers (X-*, OpenStack-*: the ones
// whose values reach lookups and the database, like X-Image-Meta-Store).
// Other headers are parsed by net/http or the handlers into typed values.
func checkRequest(r *http.Request, f Flavor) error {
	if nul, bad := checkText(r.URL.Path); nul {
		return errs.E(errs.Invalid, "NUL characters are not allowed in the URL.")
	} else if bad {
		return decodeError(f)
	}
	// Pairs that do not unescape are dropped by URL.Query as well, so no
	// handler sees them; only the ones that parse are checked.
	q, _ := url.ParseQuery(r.URL.RawQuery)
	for k, vs := range q {
		for _, s := range append([]string{k}, vs...) {
			if nul, bad := checkText(s); nul {
				return errs.E(errs.Invalid, "NUL characters are not allowed in query parameter %q.", k)
			} else if bad {
				return decodeError(f)
			}
		}
	}
	for name, vs := range r.Header {
		if !strings.HasPrefix(name, "X-") && !strings.HasPrefix(name, "Openstack-") {
			continue
		}
		for _, v := range vs {
			if nul, bad := checkText(v); nul || bad {
				return errs.E(errs.Invalid, "Invalid value for header %s: it must be UTF-8 text without NUL characters.", name)
			}
		}
	}
	return nil
}

// DefaultBodyTimeout is how long a client has, once its request headers are
// in, to send a whole non-data (JSON) request body when Wrap is not given
// another BodyTimeout.
const DefaultBodyTimeout = 60 * time.Second

// Option changes what Wrap enforces.
type Option func(*options)

type options struct {
	bodyTimeout time.Duration
}

// BodyTimeout sets how long a client has to send a whole non-data request
// body (DefaultBodyTimeout; <= 0 disables). Image data (a body of type
// application/octet-stream) is exempt: its handler applies its own rule
// for a client that stops sending.
func BodyTimeout(d time.Duration) Option { return func(o *options) { o.bodyTimeout = d } }

// isData reports whether the request carries raw data (an image upload or
// stage) rather than a JSON document.
func isData(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/octet-stream"
}

// bodyGuard is the request body as Wrap hands it to the handler. It knows
// whether the body was read to its end, and can put a deadline on the
// connection for reading the rest of it: without one, a client that sends
// half a body and stalls holds its connection and goroutine forever, in
// the handler's read or in net/http's drain after the handler.
type bodyGuard struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	eof     atomic.Bool
	armed   atomic.Bool
}

func (g *bodyGuard) Read(p []byte) (int, error) {
	n, err := g.ReadCloser.Read(p)
	if err == io.EOF {
		// net/http lifts the deadline itself when the body is all in (its
		// background read watches for the client going away from then on).
		g.eof.Store(true)
	}
	return n, err
}

// arm gives the client g.timeout from now to send the rest of the body,
// unless it is all in (a deadline then would cut net/http's background
// read, cancelling the request's context) or a deadline is already set.
// Writers that cannot set deadlines (httptest recorders, the in-process
// loopback) are left alone.
func (g *bodyGuard) arm() {
	if g == nil || g.timeout <= 0 || g.eof.Load() || g.armed.Load() {
		return
	}
	if g.rc.SetReadDeadline(time.Now().Add(g.timeout)) == nil {
		g.armed.Store(true)
	}
}

// guardBody wraps r's body (when it has one) in a bodyGuard, armed at
// once unless the body is data.
func guardBody(w http.ResponseWriter, r *http.Request, timeout time.Duration) (*http.Request, *bodyGuard) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return r, nil
	}
	g := &bodyGuard{ReadCloser: r.Body, rc: http.NewResponseController(w), timeout: timeout}
	if !isData(r) {
		g.arm()
	}
	r = r.WithContext(context.WithValue(r.Context(), keyBody, g))
	r.Body = g
	return r, g
}

// armBody puts the body deadline on the request ctx belongs to, for
// readers of JSON (DecodeJSON) whatever Content-Type the client claimed.
func armBody(ctx context.Context) {
	g, _ := ctx.Value(keyBody).(*bodyGuard)
	g.arm()
}
