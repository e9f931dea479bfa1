// Package loopback lets one service of this process call another through
// its HTTP API without a socket: requests to the host:port of a service
// that runs here are handed to that service's handler in-process, bodies
// streamed both ways, and every other request goes out over the network.
//
// The caller keeps speaking HTTP (the same client, the same API, the same
// auth and error mapping as against a remote peer), so nothing changes but
// the cost: an upload-to-image no longer copies every byte into a loopback
// socket and out again, which on a machine whose cores are busy hashing is
// CPU the hashes do not get.
package loopback

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// Transport routes requests for Hosts to Handler and others to Next.
type Transport struct {
	// Hosts are the host:port authorities Handler serves (the service's
	// bind address and the host of its public URL).
	Hosts map[string]bool
	// Handler is the service's handler, with the same middleware it has
	// behind its listener.
	Handler http.Handler
	// Next carries every other request; nil is http.DefaultTransport.
	Next http.RoundTripper
}

// Hosts returns the host:port authorities of the given URLs and bind
// addresses (scheme defaults applied), for Transport.Hosts; unparsable and
// empty entries are skipped.
func Hosts(addrs ...string) map[string]bool {
	hosts := map[string]bool{}
	for _, a := range addrs {
		if a == "" {
			continue
		}
		if !strings.Contains(a, "://") {
			a = "http://" + a
		}
		u, err := url.Parse(a)
		if err != nil || u.Host == "" {
			continue
		}
		host := u.Host
		if u.Port() == "" {
			port := "80"
			if u.Scheme == "https" {
				port = "443"
			}
			host += ":" + port
		}
		hosts[host] = true
	}
	return hosts
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	if req.URL.Port() == "" {
		if req.URL.Scheme == "https" {
			host += ":443"
		} else {
			host += ":80"
		}
	}
	if !t.Hosts[host] {
		next := t.Next
		if next == nil {
			next = http.DefaultTransport
		}
		return next.RoundTrip(req)
	}
	return t.serve(req)
}

// serve runs the handler on a server-side copy of req in its own goroutine
// and returns as soon as the handler has written its status, with the body
// streaming through a pipe.
func (t *Transport) serve(req *http.Request) (*http.Response, error) {
	sreq := req.Clone(req.Context())
	sreq.URL = &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	sreq.RequestURI = req.URL.RequestURI()
	sreq.Host = req.URL.Host
	sreq.RemoteAddr = "127.0.0.1:0" // this process
	sreq.Header.Del("Expect")       // nothing waits for a 100 Continue here
	if sreq.Body == nil {
		sreq.Body = http.NoBody
	}
	pr, pw := io.Pipe()
	w := &responseWriter{header: http.Header{}, body: pw, ready: make(chan struct{})}
	go func() {
		defer func() {
			if p := recover(); p != nil {
				w.fail(fmt.Errorf("loopback: handler panicked: %v", p))
			}
			if req.Body != nil {
				_ = req.Body.Close() // a RoundTripper always closes the body
			}
		}()
		t.Handler.ServeHTTP(w, sreq)
		w.WriteHeader(http.StatusOK) // a handler that wrote nothing
		_ = pw.Close()
	}()
	select {
	case <-w.ready:
	case <-req.Context().Done():
		_ = pr.CloseWithError(req.Context().Err())
		return nil, req.Context().Err()
	}
	if w.err != nil {
		_ = pr.Close()
		return nil, w.err
	}
	resp := &http.Response{
		Status:     fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)),
		StatusCode: w.status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        w.sent,
		Body:          pr,
		ContentLength: -1,
		Request:       req,
	}
	if n, err := strconv.ParseInt(w.sent.Get("Content-Length"), 10, 64); err == nil {
		resp.ContentLength = n
	}
	if req.Method == http.MethodHead || w.status == http.StatusNoContent || w.status == http.StatusNotModified {
		// no body on the wire for these; the handler's writes (if any)
		// are discarded as a server would
		go func() { _, _ = io.Copy(io.Discard, pr) }()
		resp.Body = http.NoBody
	}
	return resp, nil
}

// responseWriter hands the status and a snapshot of the headers to
// RoundTrip once, then streams the body into the pipe.
type responseWriter struct {
	header http.Header
	body   *io.PipeWriter
	ready  chan struct{}
	once   sync.Once
	status int
	sent   http.Header
	err    error
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 {
		return // informational responses are not passed on
	}
	w.once.Do(func() {
		w.status, w.sent = code, w.header.Clone()
		close(w.ready)
	})
}

func (w *responseWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

// Flush implements http.Flusher: every write already reaches the reader.
func (w *responseWriter) Flush() {}

// fail reports err to RoundTrip if no status was written yet, and to the
// body's reader otherwise.
func (w *responseWriter) fail(err error) {
	w.once.Do(func() {
		w.err = err
		close(w.ready)
	})
	_ = w.body.CloseWithError(err)
}
