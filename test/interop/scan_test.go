package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The response scan: with ashlarOpts.scan, each Ashlar service binds an
// internal port and the catalog's public URLs point at a reverse proxy of
// the suite's own, so every response a client of the suite gets (the
// openstack/glance/cinder CLIs, tempest, the suite's own HTTP calls) passes
// through the proxy, which scans its headers and body, as the body streams
// through, for strings no response may contain: server paths, store
// credentials and bucket names, and internal addresses (issue 17,
// "Exposure").

// secret is one string no response may contain.
type secret struct {
	label string // what it is, e.g. "state path"
	value string
}

// leak is one response that contained a secret.
type leak struct {
	response     int // the response's number, in the order seen
	method, path string
	status       int
	field        string // "body" or "header <Name>"
	label, value string
	context      string // the bytes around the first occurrence
}

func (l leak) String() string {
	return fmt.Sprintf("%s %s (%d) %s: %s %q in %q", l.method, l.path, l.status, l.field, l.label, l.value, l.context)
}

// allowance lets one response carry some secrets because the real service
// shows them too; redact removes exactly the allowed values from a 200
// response's body (gathered whole, up to maxGathered) before it is
// scanned. Keep each allowance narrow and say why it exists.
type allowance struct {
	method, path string // exact request path
	why          string
	redact       func(body []byte) []byte
}

// responseScan collects what the proxies of one Ashlar saw.
type responseScan struct {
	needles []needle
	longest int
	allow   []allowance

	mu        sync.Mutex
	leaks     []leak
	responses int
	bytes     int64
}

// needle is one byte string to look for, and the secret it stands for (a
// secret is looked for in the forms it can take in a response: as is,
// JSON-escaped, URL-escaped).
type needle struct {
	secret
	b []byte
}

func newResponseScan(secrets []secret, allow []allowance) *responseScan {
	s := &responseScan{allow: allow}
	seen := map[string]bool{}
	for _, sec := range secrets {
		if sec.value == "" {
			continue
		}
		forms := []string{sec.value,
			strings.ReplaceAll(sec.value, "/", `\/`),
			strings.ReplaceAll(url.QueryEscape(sec.value), "+", "%20"),
			url.PathEscape(sec.value),
		}
		for _, f := range forms {
			if seen[sec.label+"\x00"+f] {
				continue
			}
			seen[sec.label+"\x00"+f] = true
			s.needles = append(s.needles, needle{sec, []byte(f)})
			s.longest = max(s.longest, len(f))
		}
	}
	return s
}

// matcher finds needles in a stream of chunks: it keeps the last
// longest-1 bytes of what it has seen, so a needle split across two
// chunks is found, and reports each secret once per stream.
type matcher struct {
	s     *responseScan
	tail  []byte
	win   []byte          // reused: tail + the new bytes
	found map[string]bool // labels already reported
	hit   func(n needle, context string)
}

func (m *matcher) write(p []byte) {
	if len(m.s.needles) == 0 || len(p) == 0 {
		return
	}
	win := append(append(m.win[:0], m.tail...), p...)
	m.win = win
	for _, n := range m.s.needles {
		if m.found[n.label] {
			continue
		}
		// Only a match that ends in the new bytes is new: one that ends
		// inside the tail was whole in the previous window.
		from := max(0, len(m.tail)-len(n.b)+1)
		if i := bytes.Index(win[from:], n.b); i >= 0 {
			i += from
			if m.found == nil {
				m.found = map[string]bool{}
			}
			m.found[n.label] = true
			lo, hi := max(0, i-60), min(len(win), i+len(n.b)+60)
			m.hit(n, string(win[lo:hi]))
		}
	}
	keep := min(len(win), m.s.longest-1)
	m.tail = append(m.tail[:0], win[len(win)-keep:]...)
}

// record adds a leak found in response number resp, to req.
func (s *responseScan) record(resp int, req *http.Request, status int, field string, n needle, context string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaks = append(s.leaks, leak{response: resp, method: req.Method, path: req.URL.RequestURI(), status: status,
		field: field, label: n.label, value: n.value, context: context})
}

// scanResponse scans resp's headers now and wraps its body so that it is
// scanned as the proxy streams it to the client.
func (s *responseScan) scanResponse(resp *http.Response) error {
	req := resp.Request
	s.mu.Lock()
	s.responses++
	num := s.responses
	s.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(resp.Header)) {
		m := &matcher{s: s, hit: func(n needle, c string) { s.record(num, req, resp.StatusCode, "header "+name, n, c) }}
		m.write([]byte(name + ": " + strings.Join(resp.Header[name], ", ")))
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		// Ashlar does not compress; a body the scan cannot read must
		// not pass unseen.
		s.record(num, req, resp.StatusCode, "body", needle{secret: secret{"unscannable Content-Encoding", ce}}, "")
	}
	body := &scannedBody{rc: resp.Body, s: s, num: num, req: req, status: resp.StatusCode,
		gather: strings.Contains(resp.Header.Get("Content-Type"), "json")}
	body.stream = matcher{s: s, hit: func(n needle, c string) { s.record(num, req, resp.StatusCode, "body", n, c) }}
	for _, a := range s.allow {
		if a.method == req.Method && a.path == req.URL.Path && resp.StatusCode == http.StatusOK {
			body.redact, body.gather = a.redact, true
		}
	}
	resp.Body = body
	return nil
}

// maxGathered bounds the JSON body gathered whole; a larger one is
// scanned as a stream.
const maxGathered = 1 << 20

// scannedBody scans a response body as it is read. A JSON body is
// gathered and scanned string by string at its end, so that a leak names
// its field (e.g. "body images[].locations[].url"), after an allowance
// took out what it allows; any other body streams through the matcher.
type scannedBody struct {
	rc     io.ReadCloser
	s      *responseScan
	num    int
	req    *http.Request
	status int
	stream matcher
	gather bool
	redact func([]byte) []byte
	whole  []byte
	done   bool
}

func (b *scannedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.s.mu.Lock()
	b.s.bytes += int64(n)
	b.s.mu.Unlock()
	switch {
	case b.gather && len(b.whole)+n <= maxGathered:
		b.whole = append(b.whole, p[:n]...)
	case b.gather:
		// Too big to gather (and for an allowance): scan it as it is.
		b.gather, b.redact = false, nil
		b.stream.write(b.whole)
		b.stream.write(p[:n])
	default:
		b.stream.write(p[:n])
	}
	if err != nil {
		b.finish()
	}
	return n, err
}

func (b *scannedBody) Close() error {
	b.finish()
	return b.rc.Close()
}

func (b *scannedBody) finish() {
	if b.done || !b.gather {
		return
	}
	b.done = true
	body := b.whole
	if b.redact != nil {
		body = b.redact(body)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if dec.Decode(&doc) != nil || dec.More() {
		b.stream.write(body)
		return
	}
	seen := map[string]bool{}
	walkStrings(doc, "", func(field, str string) {
		m := &matcher{s: b.s, hit: func(n needle, c string) {
			if !seen[field+"\x00"+n.label] {
				seen[field+"\x00"+n.label] = true
				b.s.record(b.num, b.req, b.status, "body "+field, n, c)
			}
		}}
		m.write([]byte(str))
	})
}

// walkStrings calls fn with every string of a decoded JSON document, keys
// included, and where it is ("a.b[].c"; "a.b (key)" for a key).
func walkStrings(v any, path string, fn func(field, s string)) {
	switch x := v.(type) {
	case string:
		fn(path, x)
	case []any:
		for _, e := range x {
			walkStrings(e, path+"[]", fn)
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			p := k
			if path != "" {
				p = path + "." + k
			}
			fn(p+" (key)", k)
			walkStrings(x[k], p, fn)
		}
	}
}

// uuidish matches the ids in request paths, so that the report groups
// the same call on different resources.
var uuidish = regexp.MustCompile(`[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}`)

// report returns the leaks grouped by call (method, path with ids as
// {id}), field and secret, each with a count and its first occurrence.
// Where one field names both a secret and a longer one that holds it (the
// state path and a store directory under it), only the longer is listed.
func (s *responseScan) report() (lines []string, responses int, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	type where struct {
		response int
		field    string
	}
	byField := map[where][]string{}
	for _, l := range s.leaks {
		w := where{l.response, l.field}
		byField[w] = append(byField[w], l.value)
	}
	type key struct{ method, path, field, label string }
	count := map[key]int{}
	first := map[key]leak{}
	var order []key
	for _, l := range s.leaks {
		if slices.ContainsFunc(byField[where{l.response, l.field}], func(v string) bool {
			return len(v) > len(l.value) && strings.Contains(v, l.value)
		}) {
			continue
		}
		p, _, _ := strings.Cut(l.path, "?")
		k := key{l.method, uuidish.ReplaceAllString(p, "{id}"), l.field, l.label}
		if count[k] == 0 {
			order = append(order, k)
			first[k] = l
		}
		count[k]++
	}
	slices.SortFunc(order, func(a, b key) int {
		return strings.Compare(a.method+" "+a.path+" "+a.field+" "+a.label, b.method+" "+b.path+" "+b.field+" "+b.label)
	})
	for _, k := range order {
		lines = append(lines, fmt.Sprintf("%s %s: %s names the %s (%d responses), first: %s", k.method, k.path, k.field, k.label, count[k], first[k]))
	}
	return lines, s.responses, s.bytes
}

// scanProxy is the public face of one service: a reverse proxy to its
// internal bind address that scans every response.
type scanProxy struct {
	url string
	srv *http.Server
}

// startScanProxy serves on l and forwards to target. Requests go out with
// target's Host (as from a load balancer that does not pass the client's
// Host on), so a URL Ashlar built from the Host header would name the
// internal address and show.
func startScanProxy(t *testing.T, name, target string, l net.Listener, logPath string, s *responseScan) *scanProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite:        func(r *httputil.ProxyRequest) { r.SetURL(u) },
		ModifyResponse: s.scanResponse,
		Transport:      &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
		ErrorLog:       log.New(logf, name+" proxy: ", log.LstdFlags),
	}
	p := &scanProxy{url: "http://" + l.Addr().String(), srv: &http.Server{Handler: rp, ReadHeaderTimeout: 30 * time.Second}}
	go p.srv.Serve(l)
	t.Cleanup(func() {
		p.srv.Close()
		logf.Close()
	})
	return p
}

// allowFileStoreDirs is the one allowance: GET /v2/info/stores/detail
// shows each file store's directory as properties.data_dir. Glance's
// discovery API does the same (_get_file_properties: data_dir), to admins
// only (policy stores_info_detail is role:admin), and a member gets a 403
// here too (the 200 is all the allowance covers). Only that value of that
// store is taken out; anything else in the document is scanned.
func allowFileStoreDirs(dirs map[string]string) allowance {
	return allowance{method: "GET", path: "/v2/info/stores/detail",
		why: "Glance shows a file store's data_dir to admins in stores detail",
		redact: func(body []byte) []byte {
			var doc map[string]any
			if json.Unmarshal(body, &doc) != nil {
				return body
			}
			stores, _ := doc["stores"].([]any)
			for _, st := range stores {
				m, _ := st.(map[string]any)
				props, _ := m["properties"].(map[string]any)
				id, _ := m["id"].(string)
				if dir, ok := dirs[id]; ok && props != nil && props["data_dir"] == dir {
					delete(props, "data_dir")
				}
			}
			out, err := json.Marshal(doc)
			if err != nil {
				return body
			}
			return out
		}}
}

// checkResponses is a subtest that fails with every leak the proxies of a
// saw, and keeps the list in the Ashlar's log directory.
func (a *ashlar) checkResponses(t *testing.T) {
	t.Run("response_scan", func(t *testing.T) {
		if a.scan == nil {
			t.Fatal("this Ashlar was started without the response scan (ashlarOpts.scan)")
		}
		lines, responses, n := a.scan.report()
		var labels []string
		for _, s := range a.secrets {
			labels = append(labels, s.label)
		}
		t.Logf("scanned %d responses (%d body bytes) for: %s", responses, n, strings.Join(labels, ", "))
		for _, al := range a.scan.allow {
			t.Logf("allowed: %s %s: %s", al.method, al.path, al.why)
		}
		if responses == 0 {
			t.Fatal("no response went through the scanning proxies")
		}
		path := filepath.Join(a.dir, "response-scan.txt")
		os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
		if len(lines) > 0 {
			t.Errorf("%d kinds of response name a server path, a store credential or an internal address (list in %s):\n%s",
				len(lines), path, strings.Join(lines, "\n"))
		}
	})
}
