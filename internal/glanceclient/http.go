package glanceclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// HTTP is the Client for a Glance v2 endpoint reached over HTTP: Ashlar's
// image service or a real Glance.
type HTTP struct {
	base string // scheme://host[:port][/prefix], no trailing slash, no /v2
	hc   *http.Client
	// up sends image data. It never reuses a kept-alive connection: a
	// streamed body cannot be replayed, so a connection the server closed
	// while idle would fail the upload instead of being retried.
	up *http.Client
}

// Interface guard.
var _ Client = (*HTTP)(nil)

// New returns a client for the image endpoint at baseURL (as in the
// catalog, e.g. http://127.0.0.1:9292; a trailing /v2 is accepted). hc may
// be nil for a client with no overall timeout, which long uploads need.
func New(baseURL string, hc *http.Client) (*HTTP, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errs.E(errs.Invalid, "invalid image service URL %q", baseURL)
	}
	u.RawQuery, u.Fragment = "", ""
	base := strings.TrimRight(u.String(), "/")
	base = strings.TrimSuffix(base, "/v2")
	up := hc
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 0, // the store may take long to finish an upload
			// Large buffers: the upload path is bandwidth-bound.
			WriteBufferSize: 256 << 10,
			ReadBufferSize:  256 << 10,
		}}
	}
	if up == nil {
		t := hc.Transport.(*http.Transport).Clone()
		t.DisableKeepAlives = true
		// Uploads send Expect: 100-continue and wait this long for the
		// image service's go-ahead before streaming the body.
		t.ExpectContinueTimeout = 10 * time.Second
		up = &http.Client{Transport: t}
	}
	return &HTTP{base: base, hc: hc, up: up}, nil
}

// Via returns a copy of c whose requests go through wrap(transport), such
// as a loopback.Transport that serves this process's own image API without
// a socket.
func (c *HTTP) Via(wrap func(http.RoundTripper) http.RoundTripper) *HTTP {
	hc, up := *c.hc, *c.up
	hc.Transport, up.Transport = wrap(transportOf(c.hc)), wrap(transportOf(c.up))
	return &HTTP{base: c.base, hc: &hc, up: &up}
}

func transportOf(c *http.Client) http.RoundTripper {
	if c.Transport == nil {
		return http.DefaultTransport
	}
	return c.Transport
}

// Endpoint returns the base URL requests are sent to.
func (c *HTTP) Endpoint() string { return c.base }

// do sends a request and maps error statuses to error kinds; on success the
// caller owns resp.Body.
func (c *HTTP) do(ctx context.Context, token, method, path string, hdr http.Header, body io.Reader, size int64) (*http.Response, error) {
	return c.send(ctx, c.hc, token, method, path, hdr, body, size)
}

func (c *HTTP) send(ctx context.Context, hc *http.Client, token, method, path string, hdr http.Header, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "invalid image service request")
	}
	if body != nil {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errs.Wrap(errs.Unavailable, err, "the image service is unavailable")
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg, detail := errorText(resp.Header.Get("Content-Type"), b)
	if msg == "" {
		msg = fmt.Sprintf("image service returned %s", resp.Status)
	}
	return nil, &errs.Error{Kind: api.KindOfStatus(resp.StatusCode), Msg: msg, Detail: detail,
		Err: fmt.Errorf("%s %s: %s", method, path, resp.Status)}
}

var (
	tagRE   = regexp.MustCompile(`<[^>]*>`)
	spaceRE = regexp.MustCompile(`\s+`)
)

// errorText extracts the message (and optional detail) from a webob error
// body in any of its three dialects, or from a Cinder/Keystone-style JSON.
func errorText(ctype string, b []byte) (msg, detail string) {
	if strings.Contains(ctype, "json") {
		var m map[string]any
		if json.Unmarshal(b, &m) == nil {
			if s, ok := m["message"].(string); ok {
				msg, detail, _ = strings.Cut(s, "<br /><br />")
				return strings.TrimSpace(msg), strings.TrimSpace(detail)
			}
			for _, v := range m { // {"error": {"message": ...}} and similar
				if inner, ok := v.(map[string]any); ok {
					if s, ok := inner["message"].(string); ok {
						return strings.TrimSpace(s), ""
					}
				}
			}
		}
	}
	s := string(b)
	if strings.Contains(ctype, "html") || strings.Contains(s, "<html") {
		// Drop the title and h1 (the status line), keep the body text.
		if i := strings.Index(s, "</h1>"); i >= 0 {
			s = s[i+len("</h1>"):]
		}
		m, d, _ := strings.Cut(s, "<br /><br />")
		clean := func(x string) string {
			return strings.TrimSpace(spaceRE.ReplaceAllString(html.UnescapeString(tagRE.ReplaceAllString(x, " ")), " "))
		}
		return clean(m), clean(d)
	}
	// text/plain: "404 Not Found\n\n<msg>\n<detail>\n\n   "
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 2 && regexp.MustCompile(`^\d{3} `).MatchString(lines[0]) {
		lines = lines[2:]
	}
	var rest []string
	for _, l := range lines[1:] {
		if l = strings.TrimSpace(l); l != "" {
			rest = append(rest, l)
		}
	}
	return strings.TrimSpace(lines[0]), strings.Join(rest, " ")
}

// Stores lists the enabled stores (GET /v2/info/stores).
func (c *HTTP) Stores(ctx context.Context, token string) ([]Store, error) {
	resp, err := c.do(ctx, token, http.MethodGet, "/v2/info/stores", nil, nil, 0)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Stores []map[string]any `json:"stores"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "invalid stores list from the image service")
	}
	out := make([]Store, 0, len(body.Stores))
	for _, m := range body.Stores {
		s := Store{ID: str(m["id"]), Description: str(m["description"]),
			Default: truthy(m["default"]), ReadOnly: truthy(m["read-only"])}
		out = append(out, s)
	}
	return out, nil
}

// truthy decodes Glance's "true" strings (and real booleans).
func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return strings.EqualFold(x, "true")
	}
	return false
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

// CreateImage creates an image record (POST /v2/images) from fields, as
// they would appear in the JSON body.
func (c *HTTP) CreateImage(ctx context.Context, token string, fields map[string]any) (*Image, error) {
	b, err := json.Marshal(fields)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "invalid image fields")
	}
	hdr := http.Header{"Content-Type": {"application/json"}}
	resp, err := c.do(ctx, token, http.MethodPost, "/v2/images", hdr, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return decodeImage(resp.Body)
}

// GetImage shows an image (GET /v2/images/{id}).
func (c *HTTP) GetImage(ctx context.Context, token, id string) (*Image, error) {
	p, err := imagePath(id)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, token, http.MethodGet, p, nil, nil, 0)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return decodeImage(resp.Body)
}

// imagePath is image id's path, for every request about one image. An id
// that is a dot segment (or empty) names no image: PathEscape leaves it as
// it is, and the server would resolve "/v2/images/." to the image list and
// "/v2/images/../file" to another resource, so it is not found here.
func imagePath(id string) (string, error) {
	if id == "" || id == "." || id == ".." {
		return "", errs.E(errs.NotFound, "image %q not found", id)
	}
	return "/v2/images/" + url.PathEscape(id), nil
}

// coreKeys are the image fields decoded into Image's own fields.
var coreKeys = map[string]bool{"id": true, "name": true, "status": true, "size": true,
	"virtual_size": true, "disk_format": true, "container_format": true, "checksum": true,
	"stores": true, "min_disk": true, "visibility": true, "protected": true, "owner": true}

func decodeImage(r io.Reader) (*Image, error) {
	var m map[string]any
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "invalid image record from the image service")
	}
	if str(m["id"]) == "" {
		return nil, errs.E(errs.Unavailable, "image record from the image service has no id")
	}
	img := &Image{ID: str(m["id"]), Name: str(m["name"]), Status: str(m["status"]),
		Size: num(m["size"]), VirtualSize: num(m["virtual_size"]), DiskFormat: str(m["disk_format"]),
		ContainerFormat: str(m["container_format"]), Checksum: str(m["checksum"]),
		Stores: str(m["stores"]), MinDisk: num(m["min_disk"]), Visibility: str(m["visibility"]),
		Protected: truthy(m["protected"]), Owner: str(m["owner"]), Properties: map[string]any{}}
	for k, v := range m {
		if !coreKeys[k] {
			img.Properties[k] = v
		}
	}
	return img, nil
}

// Upload sends the image data (PUT /v2/images/{id}/file). size < 0 means
// unknown (chunked transfer). A non-empty store sets X-Image-Meta-Store.
func (c *HTTP) Upload(ctx context.Context, token, id, store string, r io.Reader, size int64) error {
	p, err := imagePath(id)
	if err != nil {
		return err
	}
	// With 100-continue an upload the image service refuses outright (a
	// read-only or unknown store, a second upload, quota) gets its error
	// response, instead of a connection reset half-way through a body the
	// service never meant to read.
	hdr := http.Header{"Content-Type": {"application/octet-stream"}, "Expect": {"100-continue"}}
	if store != "" {
		hdr.Set("X-Image-Meta-Store", store)
	}
	if r == nil {
		r = http.NoBody
		size = 0
	}
	// Hide any WriterTo/ReadFrom shortcuts that would defeat ContentLength
	// and report read errors from r unchanged.
	src := &trackingReader{r: r}
	var body io.Reader = src
	if f, ok := r.(*os.File); ok && size >= 0 {
		// Left bare so the transport can sendfile it.
		body = io.NopCloser(f) // keeps the transport from closing the caller's file
		src.r = nil
	}
	resp, err := c.send(ctx, c.up, token, http.MethodPut, p+"/file", hdr, body, size)
	if err != nil {
		// A failing source surfaces as a transport error; report the cause.
		if src.err != nil && !errors.Is(src.err, io.EOF) && errs.KindOf(err) == errs.Unavailable {
			return src.err
		}
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return nil
}

// trackingReader remembers the source's error.
type trackingReader struct {
	r   io.Reader
	err error
}

func (t *trackingReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && t.err == nil {
		t.err = err
	}
	return n, err
}

// Download streams the image data (GET /v2/images/{id}/file). An image
// without data (204) is errs.Invalid.
func (c *HTTP) Download(ctx context.Context, token, id string) (io.ReadCloser, error) {
	p, err := imagePath(id)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, token, http.MethodGet, p+"/file", nil, nil, 0)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNoContent {
		resp.Body.Close()
		return nil, errs.E(errs.Invalid, "image %s has no data", id)
	}
	return resp.Body, nil
}

// DeleteImage deletes an image (DELETE /v2/images/{id}).
func (c *HTTP) DeleteImage(ctx context.Context, token, id string) error {
	p, err := imagePath(id)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, token, http.MethodDelete, p, nil, nil, 0)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
