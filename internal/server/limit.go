package server

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// connLimit caps the connections one client may hold open across every
// listener of the process, so that a single host cannot take all of the
// server's connections (and the goroutines and buffers behind them),
// stalled or idle.
//
// A client is an IPv4 address or an IPv6 /64: a host usually holds a whole
// /64, so counting single IPv6 addresses would cap nothing. Networks in
// exempt are not counted at all: this host (the default, 127.0.0.0/8 and
// ::1: the tests, a local proxy) and what an operator lists there, such as
// a load balancer, which makes all of its users one address. The timeouts
// of http.Server and api.Wrap close stalled connections; the cap bounds
// how many one client can have open in the meantime.
type connLimit struct {
	max     int
	exempt  []netip.Prefix
	logger  *slog.Logger
	refused prometheus.Counter

	mu    sync.Mutex
	open  map[netip.Prefix]int
	whine atomic.Int64 // unix nanoseconds of the last refusal logged
}

// newConnLimit returns a limiter allowing max connections per client (0:
// no cap), its refusals counted in ashlar_http_connections_refused_total.
func newConnLimit(max int, exempt []netip.Prefix, logger *slog.Logger, reg prometheus.Registerer) *connLimit {
	l := &connLimit{max: max, exempt: exempt, logger: logger, open: map[netip.Prefix]int{},
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ashlar_http_connections_refused_total",
			Help: "Connections closed on accept because their client already held max_connections_per_client.",
		})}
	reg.MustRegister(l.refused)
	return l
}

// client returns the key a remote address is counted under, and false for
// an exempt or unknown address.
func (l *connLimit) client(addr net.Addr) (netip.Prefix, bool) {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Prefix{}, false
	}
	ip := ap.Addr().Unmap()
	for _, p := range l.exempt {
		if p.Contains(ip) {
			return netip.Prefix{}, false
		}
	}
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p, true
}

// acquire counts a new connection of key, or reports that key is at the cap.
func (l *connLimit) acquire(key netip.Prefix) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key] >= l.max {
		return false
	}
	l.open[key]++
	return true
}

func (l *connLimit) release(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// wrap returns ln with the cap applied (ln itself when there is no cap).
func (l *connLimit) wrap(ln net.Listener) net.Listener {
	if l.max <= 0 {
		return ln
	}
	return &limitedListener{Listener: ln, limit: l}
}

// limitedListener closes, as soon as they are accepted, the connections of
// a client that already holds the cap: nothing is read or answered, the
// client sees its connection closed, and the server goes on accepting.
type limitedListener struct {
	net.Listener
	limit *connLimit
}

func (ll *limitedListener) Accept() (net.Conn, error) {
	l := ll.limit
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, counted := l.client(c.RemoteAddr())
		if !counted {
			return c, nil
		}
		if l.acquire(key) {
			return &limitedConn{Conn: c, release: func() { l.release(key) }}, nil
		}
		c.Close()
		l.refused.Inc()
		// One line a minute at most: a client hammering the cap must not
		// flood the log.
		if now, last := time.Now().UnixNano(), l.whine.Load(); now-last > int64(time.Minute) && l.whine.CompareAndSwap(last, now) {
			l.logger.Warn("client holds max_connections_per_client; closing its new connections",
				"client", key.String(), "max", l.max)
		}
	}
}

// limitedConn gives its client's slot back when it is closed (once, as
// net/http may close a connection more than once).
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// ReadFrom keeps the connection's own ReadFrom (sendfile, splice) for
// net/http's response copies, such as image downloads from a file store.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
