package store

import (
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Metrics are the per-store operation counters.
type Metrics struct {
	ops   *prometheus.CounterVec
	bytes *prometheus.CounterVec
	dur   *prometheus.HistogramVec
}

// NewMetrics registers the store metrics on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ashlar_image_store_operations_total",
			Help: "Image store operations by store, operation and result kind."}, []string{"store", "op", "result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ashlar_image_store_bytes_total",
			Help: "Bytes written to and read from image stores."}, []string{"store", "op"}),
		dur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ashlar_image_store_operation_seconds",
			Help: "Image store operation duration.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"store", "op"}),
	}
	if reg != nil {
		reg.MustRegister(m.ops, m.bytes, m.dur)
	}
	return m
}

func (m *Metrics) observe(store, op string, n int64, start time.Time, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = errs.KindOf(err).String()
	}
	m.ops.WithLabelValues(store, op, result).Inc()
	if n > 0 {
		m.bytes.WithLabelValues(store, op).Add(float64(n))
	}
	m.dur.WithLabelValues(store, op).Observe(time.Since(start).Seconds())
}

// Ops exposes the operation counter (tests).
func (m *Metrics) Ops() *prometheus.CounterVec { return m.ops }

// countingReadCloser reports the bytes read from a Get's body, and the
// first read error, once the body is closed.
type countingReadCloser struct {
	io.ReadCloser
	n    int64
	err  error
	done func(int64, error)
	once sync.Once
}

func (c *countingReadCloser) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

func (c *countingReadCloser) Close() error {
	err := c.ReadCloser.Close()
	c.once.Do(func() { c.done(c.n, c.err) })
	return err
}
