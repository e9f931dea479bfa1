package image

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

// web-download fetches an image from a URL into the staging store without
// becoming a way into the network the server sits in: the URL and every
// redirect must name a host of [image] allowed_import_hosts, and every
// connection is checked, at connect time, against the addresses an import
// may never reach (loopback, link-local, cloud metadata, unspecified,
// multicast) unless that host:port is listed explicitly. A source that
// sends nothing for the stall timeout fails the import.

var (
	errRedirectRefused = errors.New("redirect to a host that is not allowed")
	errBlockedAddress  = errors.New("connection to an address that is not allowed")
	errSourceStalled   = errors.New("the source stopped sending data")
)

// filterURI allows only http(s) URLs to the configured hosts; a bare host
// allows ports 80 and 443.
func (s *Service) filterURI(uri string) error {
	bad := errs.E(errs.Invalid, "URI for web-download does not pass filtering: %s", uri)
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return bad
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	host := strings.ToLower(u.Hostname())
	for _, a := range s.cfg.Image.AllowedImportHosts {
		h, p := splitAllowed(a)
		if h == host && (p == port || p == "" && (port == "80" || port == "443")) {
			return nil
		}
	}
	return bad
}

// splitAllowed splits an allowed_import_hosts entry into host and port
// ("" when the entry has none).
func splitAllowed(entry string) (host, port string) {
	entry = strings.ToLower(strings.TrimSpace(entry))
	h, p, err := net.SplitHostPort(entry)
	if err != nil {
		return strings.Trim(entry, "[]"), ""
	}
	return h, p
}

// metadataAddrs are cloud instance-metadata endpoints outside the ranges
// blockedAddr refuses anyway (169.254.169.254 is link-local).
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("fd00:ec2::254"),   // AWS, IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("168.63.129.16"),   // Azure wire server
}

var thisNetwork = netip.MustParsePrefix("0.0.0.0/8")

// blockedAddr reports the addresses a web-download connects to only when
// allowed_import_hosts lists the host:port explicitly.
func blockedAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, m := range metadataAddrs {
		if ip == m {
			return true
		}
	}
	return ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified() || thisNetwork.Contains(ip) || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// listedExactly reports whether allowed_import_hosts has an entry with a
// port naming host (as the URL writes it) or ip, and port.
func (s *Service) listedExactly(host, port string, ip netip.Addr) bool {
	host = strings.ToLower(host)
	for _, a := range s.cfg.Image.AllowedImportHosts {
		h, p := splitAllowed(a)
		if p == "" || p != port {
			continue
		}
		if h == host {
			return true
		}
		if a, err := netip.ParseAddr(h); err == nil && a.Unmap() == ip.Unmap() {
			return true
		}
	}
	return false
}

// newFetchClient is the HTTP client of web-download. It uses no proxy from
// the environment: the address checked must be the one connected to.
func (s *Service) newFetchClient() *http.Client {
	tr := &http.Transport{
		DialContext:         s.dialChecked,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        4,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 30 * time.Second,
	}
	return &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if s.filterURI(req.URL.String()) != nil {
			return errRedirectRefused
		}
		return nil
	}}
}

// dialChecked connects to addr (host:port of the URL); each address the
// host resolves to is checked right before the connection is made, so a
// name that resolves elsewhere by the time of the fetch (DNS rebinding)
// gains nothing.
func (s *Service) dialChecked(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return errBlockedAddress
			}
			if blockedAddr(ap.Addr()) && !s.listedExactly(host, port, ap.Addr()) {
				return errBlockedAddress
			}
			return nil
		}}
	return d.DialContext(ctx, network, addr)
}

// download2Staging fetches a web-download URI into the staging store.
func (s *Service) download2Staging(ctx context.Context, job *importJob) error {
	id := job.image.ID
	staging := s.stores.Staging()
	// The host filter runs in the task, like any other fetch failure: the
	// request is accepted (202) and the import fails with
	// os_glance_failed_import, which is the upstream contract tempest checks.
	if err := s.filterURI(job.uri); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := newStallTimer(job.stall, func() { cancel(errSourceStalled) })
	defer stall.stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, job.uri, nil)
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "bad URI")
	}
	resp, err := s.fetch.Do(req)
	if err != nil {
		return fetchErr(ctx, job, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errs.E(errs.Unavailable, "The URI answered %s.", resp.Status)
	}
	limit, _, _, err := s.limits(ctx, job.image.Owner)
	if err != nil {
		return err
	}
	// What a dead node's download left in staging goes first.
	if err := staging.Recover(ctx, id); err != nil {
		return err
	}
	if resp.ContentLength >= 0 {
		// The download, then a copy into each store.
		job.task.SetTotal(resp.ContentLength * int64(1+len(job.stores)))
	}
	res, err := staging.Put(ctx, id, job.task.Reader(stall.reader(resp.Body)), limit, s.cfg.Image.HashingAlgorithm)
	if err == nil {
		_, err = setSize(context.WithoutCancel(ctx), s.deps.DB, id, res.Size, "")
	} else if errs.KindOf(err) == errs.Other {
		err = fetchErr(ctx, job, err)
	}
	return err
}

// fetchErr says why a fetch failed, naming no address the server resolved.
func fetchErr(ctx context.Context, job *importJob, err error) error {
	switch {
	case errors.Is(context.Cause(ctx), errSourceStalled):
		return errs.Wrap(errs.Unavailable, err, "The source of "+job.uri+" sent no data for "+job.stall.String()+".")
	case errors.Is(err, errRedirectRefused):
		return errs.Wrap(errs.Invalid, err, "URI for web-download does not pass filtering: "+job.uri+" redirects to a host that is not allowed.")
	case errors.Is(err, errBlockedAddress):
		return errs.Wrap(errs.Invalid, err, "URI for web-download does not pass filtering: "+job.uri+" resolves to an address that is not allowed.")
	}
	return errs.Wrap(errs.Unavailable, err, "The URI could not be fetched.")
}

// stallTimer calls fire once no data has arrived for d (<= 0: never).
type stallTimer struct {
	d    time.Duration
	t    *time.Timer
	last time.Time
}

func newStallTimer(d time.Duration, fire func()) *stallTimer {
	st := &stallTimer{d: d, last: time.Now()}
	if d > 0 {
		st.t = time.AfterFunc(d, fire)
	}
	return st
}

func (st *stallTimer) stop() {
	if st.t != nil {
		st.t.Stop()
	}
}

// reader passes r through, pushing the deadline back as data arrives
// (once per tenth of d: a timer update per read would cost more).
func (st *stallTimer) reader(r io.Reader) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		n, err := r.Read(p)
		if now := time.Now(); n > 0 && st.t != nil && now.Sub(st.last) > st.d/10 {
			st.t.Reset(st.d)
			st.last = now
		}
		return n, err
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
