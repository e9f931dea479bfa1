package server

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// A client is an IPv4 address or an IPv6 /64 (IPv4-mapped addresses count
// as IPv4); exempt networks are not counted; the cap holds per client.
func TestConnLimitClients(t *testing.T) {
	l := newConnLimit(2, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.9.0.0/16")},
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	tests := []struct {
		addr string
		key  string // "" when exempt
	}{
		{"192.0.2.7:4000", "192.0.2.7/32"},
		{"[::ffff:192.0.2.7]:4000", "192.0.2.7/32"},
		{"[2001:db8:1:2:aaaa::1]:4000", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:4000", "2001:db8:1:2::/64"},
		{"[2001:db8:1:3::1]:4000", "2001:db8:1:3::/64"},
		{"127.0.0.1:4000", ""},
		{"10.9.200.1:4000", ""},
		{"10.10.0.1:4000", "10.10.0.1/32"},
	}
	for _, tt := range tests {
		key, counted := l.client(&net.TCPAddr{IP: net.ParseIP(netip.MustParseAddrPort(tt.addr).Addr().String()), Port: 4000})
		if counted != (tt.key != "") || (counted && key.String() != tt.key) {
			t.Errorf("%s: key %v counted %v, want %q", tt.addr, key, counted, tt.key)
		}
	}

	a, b := netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("192.0.2.8/32")
	if !l.acquire(a) || !l.acquire(a) || l.acquire(a) {
		t.Error("cap of 2 not enforced")
	}
	if !l.acquire(b) {
		t.Error("another client is refused")
	}
	l.release(a)
	if !l.acquire(a) {
		t.Error("a released slot is not reusable")
	}
	l.release(a)
	l.release(a)
	l.release(b)
	if len(l.open) != 0 {
		t.Errorf("counts left after every release: %v", l.open)
	}
}
