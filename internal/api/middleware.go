// Package api holds the HTTP plumbing shared by the identity, image and
// volume APIs: request ids, access logs, metrics, JSON bodies, error bodies
// and the health check.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

// HeaderRequestID is the response header carrying the request id.
const HeaderRequestID = "X-Openstack-Request-Id"

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyLogger
	keyRoute
	keyFlavor
	keyBody
)

// RequestID returns the request id of the request ctx belongs to.
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(keyRequestID).(string)
	return s
}

// LoggerFrom returns the request-scoped logger (with the request id), or the
// default logger outside a request.
func LoggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(keyLogger).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// Metrics are the request counters and latencies of every service.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewMetrics registers the HTTP metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ashlar_http_requests_total", Help: "HTTP requests by service, route and status.",
		}, []string{"service", "route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ashlar_http_request_duration_seconds", Help: "HTTP request latency by service and route.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"service", "route", "method"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// recorder captures the status and size written by a handler.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer (flush,
// deadlines) through the recorder.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Wrap adds, around a service's handler: the request id header, the access
// log, metrics, panic recovery, GET /healthcheck, the refusal of NUL and
// non-UTF-8 bytes in the URL and OpenStack headers (checkRequest) and the
// deadline for sending a request body (BodyTimeout). flavor renders errors
// raised here in the service's dialect, and is handed to the handler's
// context (FlavorOf) for Mux's 404 and 405 answers.
func Wrap(service string, h http.Handler, logger *slog.Logger, m *Metrics, flavor Flavor, opts ...Option) http.Handler {
	o := options{bodyTimeout: DefaultBodyTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := "req-" + uuid.NewString()
		w.Header().Set(HeaderRequestID, id)
		l := logger.With("request_id", id)
		route := new(string)
		ctx := context.WithValue(r.Context(), keyRequestID, id)
		ctx = context.WithValue(ctx, keyLogger, l)
		ctx = context.WithValue(ctx, keyRoute, route)
		ctx = context.WithValue(ctx, keyFlavor, flavor)
		r = r.WithContext(ctx)
		rec := &recorder{ResponseWriter: w}
		r, body := guardBody(rec, r, o.bodyTimeout)
		// Whatever the handler left unread, net/http drains after it
		// returns; that must not wait forever on a stalled client either.
		defer body.arm()
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				l.Error("panic", "panic", p, "stack", string(debug.Stack()))
				if rec.status == 0 {
					WriteError(rec, r, flavor, errs.E(errs.Other, "internal error"))
				}
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			rt := *route
			if rt == "" {
				rt = "unmatched"
			}
			d := time.Since(start)
			if m != nil {
				m.requests.WithLabelValues(service, rt, r.Method, strconv.Itoa(status)).Inc()
				m.latency.WithLabelValues(service, rt, r.Method).Observe(d.Seconds())
			}
			l.Info("request", "method", r.Method, "path", r.URL.Path,
				"status", status, "bytes", rec.bytes, "duration_ms", float64(d.Microseconds())/1000)
		}()
		if r.URL.Path == "/healthcheck" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			*route = "/healthcheck"
			rec.Header().Set("Content-Type", "text/plain; charset=UTF-8")
			rec.WriteHeader(http.StatusOK)
			if r.Method == http.MethodGet {
				_, _ = rec.Write([]byte("OK"))
			}
			return
		}
		if err := checkRequest(r, flavor); err != nil {
			WriteError(rec, r, flavor, err)
			return
		}
		h.ServeHTTP(rec, r)
	})
}

// Mux is an http.ServeMux that reports the matched pattern to the metrics
// and access log of Wrap, so metrics are labelled by route, not by path,
// and that answers a path it has no route for (404) or a method the path
// does not take (405, with Allow; TRACE and other unknown methods) in the
// API's own error dialect (FlavorOf) instead of ServeMux's plain text.
type Mux struct{ *http.ServeMux }

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{http.NewServeMux()} }

// ServeHTTP dispatches and records the route.
func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, pattern := m.Handler(r)
	if p, ok := r.Context().Value(keyRoute).(*string); ok && pattern != "" {
		*p = pattern
	}
	if f, ok := FlavorOf(r.Context()); ok && pattern == "" {
		unmatched(w, r, h, f)
		return
	}
	m.ServeMux.ServeHTTP(w, r)
}

// unmatched runs ServeMux's own answer for a request no route takes into a
// buffer and renders its 404 or 405 in the flavor's dialect; anything else
// (a redirect to the cleaned path) goes out as ServeMux wrote it.
func unmatched(w http.ResponseWriter, r *http.Request, h http.Handler, f Flavor) {
	buf := &bufferedResponse{header: http.Header{}}
	h.ServeHTTP(buf, r)
	switch buf.status {
	case http.StatusNotFound:
		WriteError(w, r, f, errs.E(errs.NotFound, "The resource could not be found."))
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", buf.header.Get("Allow"))
		WriteError(w, r, f, errs.E(errs.NotAllowed, "%s", notAllowedMessage(f, r.Method)))
	default:
		for k, vs := range buf.header {
			w.Header()[k] = vs
		}
		w.WriteHeader(buf.status)
		_, _ = w.Write(buf.body)
	}
}

// notAllowedMessage is the text of a 405 as each API's framework words it:
// webob's (Glance, Cinder) names the method, werkzeug's (Keystone is a
// Flask application) does not.
func notAllowedMessage(f Flavor, method string) string {
	if f == Keystone {
		return "The method is not allowed for the requested URL."
	}
	return "The method " + method + " is not allowed for this resource."
}

// bufferedResponse holds a small response written by ServeMux itself.
type bufferedResponse struct {
	header http.Header
	status int
	body   []byte
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	b.body = append(b.body, p...)
	return len(p), nil
}
