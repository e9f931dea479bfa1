// Package http is the read-only HTTP image-store driver (Glance's "http"
// store): images that live on some web server are read with GET and HEAD;
// writes are refused with errs.Gone (410, like Glance's read-only stores).
//
// Keys: Glance's http store has no base URL; each image location is a full
// http(s) URL. This driver accepts both forms:
//   - a key that is an absolute http:// or https:// URL is fetched as is
//     (what an image's `locations` entry holds in Glance). When
//     http_store_base_url is set, such a URL must lie under it (same scheme,
//     host and port, path below the base path), so a store cannot be used
//     to reach arbitrary hosts;
//   - any other key is a path relative to http_store_base_url (required
//     then), each '/'-separated segment path-escaped.
//
// Like Glance, up to 5 redirects are followed. A 404 or 410 is
// errs.NotFound; connection failures, 5xx and other unexpected statuses are
// errs.Unavailable (Glance's RemoteServiceUnavailable / BadStoreUri).
package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
)

// OptBaseURL is the [store:<id>] key of the URL keys are relative to.
const OptBaseURL = "http_store_base_url"

// maxRedirects is Glance's MAX_REDIRECTS.
const maxRedirects = 5

// Driver reads objects from a web server.
type Driver struct {
	base   *url.URL // nil: keys must be absolute URLs
	client *http.Client
}

// Config is an http store's configuration.
type Config struct {
	// BaseURL is the URL relative keys are resolved under; empty when
	// every key is a whole URL.
	BaseURL string
}

// ParseConfig reads an http store's [store:<id>] options; problems are
// recorded in o.
func ParseConfig(o *config.Options) Config {
	return Config{BaseURL: o.HTTPURL(OptBaseURL, "")}
}

// Open opens the http store c describes, with New's default client.
func Open(c Config) (*Driver, error) { return New(c.BaseURL, nil) }

// New builds a driver for base (may be empty: then every key must be an
// absolute URL). A nil client gets a default with connect and
// response-header timeouts but no overall timeout (images are large).
func New(base string, client *http.Client) (*Driver, error) {
	d := &Driver{client: client}
	if base != "" {
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errs.E(errs.Invalid, "%s: %q is not an http(s) URL", OptBaseURL, base)
		}
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		u.RawQuery, u.Fragment = "", ""
		d.base = u
	}
	if d.client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		t.ResponseHeaderTimeout = 60 * time.Second
		d.client = &http.Client{Transport: t}
	}
	c := *d.client
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) > maxRedirects {
			return errs.E(errs.Unavailable, "the HTTP store URL exceeded %d maximum redirects", maxRedirects)
		}
		return nil
	}
	d.client = &c
	return d, nil
}

// ReadOnly implements store.ReadOnlyDriver.
func (d *Driver) ReadOnly() bool { return true }

// URL resolves key, which the Store has checked, to the URL it is read
// from (see the package comment).
func (d *Driver) URL(key string) (string, error) {
	if strings.HasPrefix(key, "http://") || strings.HasPrefix(key, "https://") {
		u, err := url.Parse(key)
		if err != nil || u.Host == "" {
			return "", errs.E(errs.Invalid, "invalid image URL %q", key)
		}
		u.Fragment = ""
		if d.base != nil && (u.Scheme != d.base.Scheme || u.Host != d.base.Host ||
			!strings.HasPrefix(u.EscapedPath(), d.base.EscapedPath()) || strings.Contains(u.Path, "/../")) {
			return "", errs.E(errs.Invalid, "image URL %q is not under the store's base URL", key)
		}
		return u.String(), nil
	}
	if d.base == nil {
		return "", errs.E(errs.Invalid, "store key %q is not an http(s) URL and the store has no %s", key, OptBaseURL)
	}
	segs := strings.Split(strings.TrimPrefix(key, "/"), "/")
	for i, s := range segs {
		if s == "." || s == ".." {
			return "", errs.E(errs.Invalid, "invalid store key %q", key)
		}
		segs[i] = url.PathEscape(s)
	}
	return d.base.String() + strings.Join(segs, "/"), nil
}

// Location returns the URL the object is read from.
func (d *Driver) Location(key string) (string, error) { return d.URL(key) }

// Put implements the store.Driver method: the store is read-only.
func (d *Driver) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	return 0, errs.E(errs.Gone, "Store is read-only: HTTP stores do not accept image data")
}

// Delete implements the store.Driver method: the store is read-only.
func (d *Driver) Delete(ctx context.Context, key string) error {
	return errs.E(errs.Gone, "Store is read-only: HTTP stores do not delete image data")
}

func (d *Driver) do(ctx context.Context, method, u, rng string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "invalid image URL")
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var e *errs.Error
		if errors.As(err, &e) {
			return nil, err
		}
		return nil, errs.Wrap(errs.Unavailable, err, "HTTP store is unavailable")
	}
	return resp, nil
}

// statusErr maps a failed response to the store error contract.
func statusErr(resp *http.Response, u string) error {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotFound, http.StatusGone:
		return errs.E(errs.NotFound, "image data not found at the HTTP store URL")
	}
	return errs.Wrap(errs.Unavailable, fmt.Errorf("GET %s: %s", u, resp.Status),
		fmt.Sprintf("HTTP store URL returned a %d status code", resp.StatusCode))
}

// Size implements the store.Driver method: HEAD's Content-Length, or the
// total of a one-byte range request when the server sends no length.
func (d *Driver) Size(ctx context.Context, key string) (int64, error) {
	u, err := d.URL(key)
	if err != nil {
		return 0, err
	}
	resp, err := d.do(ctx, http.MethodHead, u, "")
	if err != nil {
		return 0, err
	}
	if resp.StatusCode >= 300 {
		return 0, statusErr(resp, u)
	}
	resp.Body.Close()
	if resp.ContentLength >= 0 {
		return resp.ContentLength, nil
	}
	resp, err = d.do(ctx, http.MethodGet, u, "bytes=0-0")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusPartialContent {
		if _, _, total, ok := parseContentRange(resp.Header.Get("Content-Range")); ok && total >= 0 {
			return total, nil
		}
	}
	if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		return 0, nil // nothing to read from byte 0: empty
	}
	if resp.StatusCode >= 300 {
		return 0, statusErr(resp, u)
	}
	if resp.ContentLength >= 0 { // 200: the range was ignored
		return resp.ContentLength, nil
	}
	return 0, errs.E(errs.Unavailable, "HTTP store URL reports no size")
}

// Get implements the store.Driver method with a Range request; a server
// that ignores Range (200) is handled by skipping and limiting the body.
func (d *Driver) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	u, err := d.URL(key)
	if err != nil {
		return nil, err
	}
	if length == 0 {
		return store.EmptyGet(ctx, d, key, offset, false)
	}
	rng := ""
	switch {
	case length > 0:
		rng = fmt.Sprintf("bytes=%d-%d", offset, offset+length-1)
	case offset > 0:
		rng = fmt.Sprintf("bytes=%d-", offset)
	}
	resp, err := d.do(ctx, http.MethodGet, u, rng)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		start, _, _, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != offset {
			resp.Body.Close()
			return nil, errs.E(errs.Unavailable, "HTTP store answered a different range than asked")
		}
		return limit(resp.Body, length), nil
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return store.EmptyGet(ctx, d, key, offset, true)
	case resp.StatusCode >= 300:
		return nil, statusErr(resp, u)
	}
	// 200: the whole object.
	if offset > 0 {
		if resp.ContentLength >= 0 && offset > resp.ContentLength {
			resp.Body.Close()
			return nil, errs.E(errs.BadRange, "offset %d beyond object size %d", offset, resp.ContentLength)
		}
		if n, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
			resp.Body.Close()
			if err == io.EOF && n == offset {
				return io.NopCloser(strings.NewReader("")), nil
			}
			if err == io.EOF {
				return nil, errs.E(errs.BadRange, "offset %d beyond object size %d", offset, n)
			}
			return nil, errs.Wrap(errs.Unavailable, err, "HTTP store is unavailable")
		}
	}
	return limit(resp.Body, length), nil
}

func limit(rc io.ReadCloser, length int64) io.ReadCloser {
	if length < 0 {
		return rc
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(rc, length), rc}
}

// parseContentRange parses "bytes first-last/total" (total may be "*").
func parseContentRange(s string) (first, last, total int64, ok bool) {
	s, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(s, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	first, err1 = strconv.ParseInt(a, 10, 64)
	last, err2 = strconv.ParseInt(b, 10, 64)
	total = -1
	if tot != "*" {
		total, err3 = strconv.ParseInt(tot, 10, 64)
	}
	return first, last, total, err1 == nil && err2 == nil && err3 == nil
}
