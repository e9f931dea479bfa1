package server

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

// The fuzz targets drive the three APIs' full in-process handlers (api.Wrap,
// auth, routing, decoding, the handlers and the database, SQLite in a temp
// directory, and PostgreSQL when ASHLAR_TEST_POSTGRES_URL is set) with
// fuzzed requests and require that none is answered with a 5xx (a panic is
// one: Wrap turns it into a 500) or hangs. Their seed corpora are in
// testdata/fuzz/<target>/ and run with every `go test`; `make fuzz` fuzzes
// each target for a bounded time.
//
// An input is: which route (an index into the service's table; past its
// end, a free-form request whose method is picked by the index and whose
// path is arg as given), which caller (admin, member of another project,
// none), arg (a path segment, escaped), the raw query, a header value (the
// route's header: X-Image-Meta-Store, OpenStack-API-Version, ...) and the
// body.

// fuzzRoute is one request shape.
type fuzzRoute struct {
	method, path string // path may hold {arg} and the cluster's {p}, {img}, ...
	ctype        string // Content-Type of the body; "" sends none
	header       string // the header the fuzzed header value goes into
}

const ctJSON = "application/json"

var imageRoutes = []fuzzRoute{
	{"POST", "/v2/images", ctJSON, ""},
	{"PATCH", "/v2/images/{img}", jsonPatch, ""},
	{"GET", "/v2/images", "", ""},
	{"GET", "/v2/images/{arg}", "", ""},
	{"POST", "/v2/images/{img}/members", ctJSON, ""},
	{"PUT", "/v2/images/{img}/members/{arg}", ctJSON, ""},
	{"GET", "/v2/images/{img}/members", "", ""},
	{"GET", "/v2/images/{img}/members/{arg}", "", ""},
	{"PUT", "/v2/images/{img}/tags/{arg}", "", ""},
	{"DELETE", "/v2/images/{img}/tags/{arg}", "", ""},
	{"POST", "/v2/images/{img}/import", ctJSON, "X-Image-Meta-Store"},
	{"PUT", "/v2/images/{img}/file", "application/octet-stream", "X-Image-Meta-Store"},
	{"PUT", "/v2/images/{img}/stage", "application/octet-stream", ""},
	{"GET", "/v2/images/{img}/file", "", "Range"},
	{"DELETE", "/v2/stores/{arg}/{img}", "", ""},
	{"POST", "/v2/images/{img}/actions/deactivate", "", ""},
	{"GET", "/v2/images/{img}/tasks", "", ""},
	{"GET", "/v2/tasks/{arg}", "", ""},
	{"GET", "/v2/info/stores/detail", "", ""},
}

var volumeRoutes = []fuzzRoute{
	{"POST", "/v3/{p}/volumes", ctJSON, "OpenStack-API-Version"},
	{"PUT", "/v3/{p}/volumes/{vol}", ctJSON, "OpenStack-API-Version"},
	{"POST", "/v3/{p}/volumes/{vol}/action", ctJSON, "OpenStack-API-Version"},
	{"GET", "/v3/{p}/volumes", "", "OpenStack-API-Version"},
	{"GET", "/v3/{p}/volumes/detail", "", "OpenStack-API-Version"},
	{"GET", "/v3/{p}/volumes/{arg}", "", "OpenStack-API-Version"},
	{"GET", "/v3/{p}/volumes/summary", "", "OpenStack-API-Version"},
	{"POST", "/v3/{p}/volumes/{vol}/metadata", ctJSON, ""},
	{"PUT", "/v3/{p}/volumes/{vol}/metadata", ctJSON, ""},
	{"PUT", "/v3/{p}/volumes/{vol}/metadata/{arg}", ctJSON, ""},
	{"DELETE", "/v3/{p}/volumes/{vol}/metadata/{arg}", "", ""},
	{"POST", "/v3/{p}/types", ctJSON, "OpenStack-API-Version"},
	{"PUT", "/v3/{p}/types/{type}", ctJSON, ""},
	{"POST", "/v3/{p}/types/{type}/action", ctJSON, ""},
	{"GET", "/v3/{p}/types", "", "OpenStack-API-Version"},
	{"GET", "/v3/{p}/types/{arg}", "", ""},
	{"POST", "/v3/{p}/types/{type}/extra_specs", ctJSON, ""},
	{"PUT", "/v3/{p}/types/{type}/extra_specs/{arg}", ctJSON, ""},
	{"GET", "/v3/{p}/messages", "", "OpenStack-API-Version"},
	{"GET", "/v3/{p}/scheduler-stats/get_pools", "", ""},
	{"GET", "/v3/volumes", "", "OpenStack-API-Version"},
	{"POST", "/v3/{p}/os-volume-transfer", ctJSON, "OpenStack-API-Version"},
	{"POST", "/v3/{p}/volume-transfers/{arg}/accept", ctJSON, ""},
	{"GET", "/v3/{p}/volume-transfers/detail", "", "OpenStack-API-Version"},
	{"POST", "/v3/{p}/types/{type}/encryption", ctJSON, ""},
	{"PUT", "/v3/{p}/types/{type}/encryption/{arg}", ctJSON, ""},
	{"PUT", "/v3/{p}/os-services/{arg}", ctJSON, "OpenStack-API-Version"},
	{"GET", "/v3/{p}/os-hosts/{arg}", "", ""},
	{"GET", "/v3/{p}/capabilities/{arg}", "", ""},
}

var identityRoutes = []fuzzRoute{
	{"POST", "/v3/auth/tokens", ctJSON, ""},
	{"GET", "/v3/auth/tokens", "", "X-Subject-Token"},
	{"POST", "/v3/projects", ctJSON, ""},
	{"PATCH", "/v3/projects/{fp}", ctJSON, ""},
	{"GET", "/v3/projects", "", ""},
	{"GET", "/v3/projects/{arg}", "", ""},
	{"POST", "/v3/users", ctJSON, ""},
	{"PATCH", "/v3/users/{member}", ctJSON, ""},
	{"GET", "/v3/users", "", ""},
	{"POST", "/v3/users/{member}/password", ctJSON, ""},
	{"GET", "/v3/users/{arg}/projects", "", ""},
	{"POST", "/v3/roles", ctJSON, ""},
	{"GET", "/v3/roles", "", ""},
	{"PUT", "/v3/projects/{fp}/users/{member}/roles/{arg}", "", ""},
	{"GET", "/v3/role_assignments", "", ""},
	{"POST", "/v3/services", ctJSON, ""},
	{"POST", "/v3/endpoints", ctJSON, ""},
	{"GET", "/v3/endpoints", "", ""},
	{"GET", "/v3/domains", "", ""},
	{"GET", "/v3/auth/projects", "", ""},
}

// fuzzHang is how long one request may take before the input counts as a
// hang (the requests are small; the database is a local SQLite file).
const fuzzHang = 10 * time.Second

// freeMethods are the methods of free-form requests.
var freeMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "TRACE", "OPTIONS"}

// fuzzAPI is the body of each target: one cluster per engine (SQLite, and
// PostgreSQL when ASHLAR_TEST_POSTGRES_URL is set) per fuzzing process, and
// each input sent to every cluster.
func fuzzAPI(f *testing.F, service string, routes []fuzzRoute) {
	clusters := []*cluster{newCluster(f, "sqlite")}
	if os.Getenv(dbtest.EnvPostgres) != "" {
		clusters = append(clusters, newCluster(f, "postgres"))
	}
	f.Fuzz(func(t *testing.T, route, who uint8, arg, query, header string, body []byte) {
		var rt fuzzRoute
		if int(route) < len(routes) {
			rt = routes[route]
			rt.path = strings.ReplaceAll(rt.path, "{arg}", url.PathEscape(arg))
		} else {
			rt = fuzzRoute{method: freeMethods[int(route)%len(freeMethods)], path: arg, ctype: ctJSON}
			if !strings.HasPrefix(rt.path, "/") {
				rt.path = "/" + rt.path
			}
		}
		// What a real server refuses before any handler: a header value
		// with control bytes.
		if !validHeader(header) {
			t.Skip()
		}
		for i, c := range clusters {
			req := c.fuzzRequest(t, rt, who, query, header, body)
			c.errors.Take()
			w := httptest.NewRecorder()
			done := make(chan struct{})
			go func() {
				defer close(done)
				c.srv.Handler(service).ServeHTTP(w, req)
			}()
			input := fmt.Sprintf("%s %s (engine %s, caller %d, %s: %q, body %q)",
				rt.method, req.RequestURI, []string{"sqlite", "postgres"}[i], who%3, rt.header, header, body)
			select {
			case <-done:
			case <-time.After(fuzzHang):
				stacks := make([]byte, 1<<20)
				t.Fatalf("%s: no answer after %v\n%s", input, fuzzHang, stacks[:runtime.Stack(stacks, true)])
			}
			if w.Code >= 500 {
				t.Errorf("%s: %d %s\nlogged: %s", input, w.Code, w.Body, c.errors.Take())
			}
		}
	})
}

// fuzzRequest builds rt's request as the fuzzer's caller (who: admin,
// member of another project, none) on c, skipping the test when a real
// server would refuse the request line.
func (c *cluster) fuzzRequest(t *testing.T, rt fuzzRoute, who uint8, query, header string, body []byte) *http.Request {
	token, project := "", c.project
	switch who % 3 {
	case 0:
		token = c.token
	case 1:
		token, project = c.member, c.memberProject
	}
	target := strings.ReplaceAll(c.expand(rt.path), c.project, project)
	if query != "" {
		target += "?" + query
	}
	// a space ends the target of a request line
	u, err := url.ParseRequestURI(target)
	if err != nil || strings.ContainsAny(target, " \t") {
		t.Skip()
	}
	req := httptest.NewRequest("GET", "/", bytes.NewReader(body))
	req.Method, req.URL, req.RequestURI = rt.method, u, target
	if rt.ctype != "" && len(body) > 0 {
		req.Header.Set("Content-Type", rt.ctype)
	} else {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	if rt.header != "" && header != "" {
		req.Header.Set(rt.header, header)
	}
	return req
}

// validHeader is net/http's rule for header values: no control bytes
// other than tab.
func validHeader(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

// FuzzImageAPI fuzzes the Glance API: image create, update (json-patch),
// list filters and markers, members, tags, uploads, staging, imports.
func FuzzImageAPI(f *testing.F) { fuzzAPI(f, config.ServiceImage, imageRoutes) }

// FuzzVolumeAPI fuzzes the Cinder API: volume create, update, actions,
// list filters, metadata, types and extra specs, microversion headers.
func FuzzVolumeAPI(f *testing.F) { fuzzAPI(f, config.ServiceVolume, volumeRoutes) }

// FuzzIdentityAPI fuzzes the Keystone API: tokens, projects, users,
// passwords, roles and grants, services and endpoints.
func FuzzIdentityAPI(f *testing.F) { fuzzAPI(f, config.ServiceIdentity, identityRoutes) }
