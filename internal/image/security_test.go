package image

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

// Regression tests of issue 17 for the image API.

// TestLocationsHidden: by default no response names where image data
// lives (locations, direct_url: server paths); with Glance's options on,
// admins and the owner's project see them and a project the image is
// shared with does not.
func TestLocationsHidden(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		data := bytes.Repeat([]byte("where"), 1000)
		for _, c := range []struct {
			extra              string
			owner, member, adm bool
		}{
			{"", false, false, false},
			{"show_multiple_locations = true\nshow_image_direct_url = true", true, false, true},
		} {
			e := newEnv(t, d, c.extra)
			id := e.create("alice", rawImage)
			e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/file", data))
			e.Must(200, e.Do("alice", "POST", "/v2/images/"+id+"/members", `{"member":"p2"}`))
			e.Must(200, e.Do("bob", "PUT", "/v2/images/"+id+"/members/p2", `{"status":"accepted"}`))
			for _, who := range []struct {
				token string
				sees  bool
			}{{"alice", c.owner}, {"reader", c.owner}, {"bob", c.member}, {"admin", c.adm}} {
				show := e.Must(200, e.Do(who.token, "GET", "/v2/images/"+id, nil))
				list := e.Must(200, e.Do(who.token, "GET", "/v2/images?id="+id, nil))
				for _, body := range [][]byte{show.Body, list.Body} {
					leaks := bytes.Contains(body, []byte(e.state))
					if has := bytes.Contains(body, []byte(`"locations"`)); has != who.sees || leaks != who.sees ||
						bytes.Contains(body, []byte(`"direct_url"`)) != who.sees {
						t.Errorf("config %q, %s: locations shown %v, path shown %v, want %v: %s", c.extra, who.token, has, leaks, who.sees, body)
					}
					if !bytes.Contains(body, []byte(`"stores":"fast"`)) {
						t.Errorf("%s: stores missing: %s", who.token, body)
					}
				}
			}
		}
	})
}

// TestNoServerPathInResponses drives every image API route a project
// member uses (data, staging, the three import methods, tasks, members,
// discovery) and checks that no response names the state directory, a
// store directory or an S3 endpoint. (Admins' GET /v2/info/stores/detail
// shows file stores' data_dir, as Glance's does.)
func TestNoServerPathInResponses(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		s3addr := "127.0.0.1:1" // never contacted
		e := newEnvWith(t, d, ", obj:s3", `
[store:obj]
s3_store_host = http://`+s3addr+`
s3_store_bucket = secret-bucket
s3_store_access_key = k
s3_store_secret_key = s
`)
		src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("web data")) }))
		defer src.Close()
		e.cfg.Image.AllowedImportHosts = []string{strings.TrimPrefix(src.URL, "http://")}
		var bodies []apitest.Resp
		do := func(code int, token, method, path string, body any, hdr ...string) map[string]any {
			t.Helper()
			r := e.Must(code, e.Do(token, method, path, body, hdr...))
			bodies = append(bodies, r)
			if len(r.Body) > 0 && r.Header.Get("Content-Type") == "application/json" {
				return r.JSON(t)
			}
			return nil
		}
		id := do(201, "alice", "POST", "/v2/images", rawImage)["id"].(string)
		do(204, "alice", "PUT", "/v2/images/"+id+"/file", []byte("file data"), "X-Image-Meta-Store", "cheap")
		do(200, "alice", "GET", "/v2/images/"+id, nil)
		do(200, "alice", "PATCH", "/v2/images/"+id, `[{"op":"add","path":"/k","value":"v"}]`, "Content-Type", patchV21)
		do(202, "admin", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"copy-image"},"stores":["reliable"]}`)
		e.waitImage(id, importDone)
		staged := do(201, "alice", "POST", "/v2/images", rawImage)["id"].(string)
		do(204, "alice", "PUT", "/v2/images/"+staged+"/stage", []byte("staged data"))
		do(202, "alice", "POST", "/v2/images/"+staged+"/import", `{"method":{"name":"glance-direct"},"stores":["fast","obj"],"all_stores_must_succeed":false}`)
		e.waitImage(staged, importDone)
		web := do(201, "alice", "POST", "/v2/images", rawImage)["id"].(string)
		do(202, "alice", "POST", "/v2/images/"+web+"/import", `{"method":{"name":"web-download","uri":"`+src.URL+`/x"}}`)
		e.waitImage(web, importDone)
		for _, im := range []string{id, staged, web} {
			for _, task := range do(200, "alice", "GET", "/v2/images/"+im+"/tasks", nil)["tasks"].([]any) {
				owner := map[string]string{"p1": "alice", "admin": "admin"}[task.(map[string]any)["owner"].(string)]
				do(200, owner, "GET", "/v2/tasks/"+task.(map[string]any)["id"].(string), nil)
			}
		}
		do(200, "alice", "GET", "/v2/images", nil)
		do(200, "alice", "GET", "/v2/images/"+id+"/file", nil)
		do(200, "alice", "POST", "/v2/images/"+id+"/members", `{"member":"p2"}`)
		do(200, "bob", "GET", "/v2/images/"+id+"/members/p2", nil)
		do(200, "alice", "GET", "/v2/info/stores", nil)
		do(200, "alice", "GET", "/v2/info/usage", nil)
		do(200, "admin", "GET", "/v2/info/stores/detail", nil) // S3 endpoint and bucket stay internal
		for _, r := range bodies {
			text := string(r.Body) + fmt.Sprint(r.Header)
			for _, secret := range []string{e.state, e.cfg.Image.StagingDir, s3addr, "secret-bucket"} {
				if strings.Contains(text, secret) && !(secret == e.state && strings.Contains(text, `"data_dir"`)) {
					t.Errorf("a response names %q: %s", secret, text)
				}
			}
		}
	})
}

// TestMalformedChunkedBody: a chunked body that breaks the encoding is the
// client's error (400, Glance's body), on the data and the staging upload;
// the image goes back to queued.
func TestMalformedChunkedBody(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, "")
		for _, path := range []string{"file", "stage"} {
			id := e.create("alice", rawImage)
			conn := e.dial(t)
			fmt.Fprintf(conn, "PUT /v2/images/%s/%s HTTP/1.1\r\nHost: x\r\nX-Auth-Token: alice\r\nAccept: application/json\r\n"+
				"Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\nzz\r\n", id, path)
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			conn.Close()
			if res.StatusCode != 400 || !strings.Contains(string(body), "Error reading the image data from the request.") ||
				!strings.Contains(string(body), `"title": "Bad Request"`) && !strings.Contains(string(body), `"title":"Bad Request"`) {
				t.Errorf("PUT /%s with a malformed chunk: %d %s", path, res.StatusCode, body)
			}
			if st := e.image(id)["status"]; st != "queued" {
				t.Errorf("PUT /%s: status %v, want queued", path, st)
			}
			e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/"+path, []byte("good data")))
		}
	})
}

// TestCopyIntoReadOnlyStore: copy-image into a read-only store is refused
// up front with the upload path's answer (410), and no task starts.
func TestCopyIntoReadOnlyStore(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, "")
		id := e.create("alice", rawImage)
		e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/file", []byte("data")))
		r := e.Must(410, e.Do("admin", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"copy-image"},"stores":["web"]}`))
		if !strings.Contains(string(r.Body), "Adding images to store is disabled.") {
			t.Errorf("copy into read-only store: %s", r.Body)
		}
		e.Must(410, e.Do("admin", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"copy-image"},"stores":["cheap","web"]}`))
		if tasks := e.MustJSON(200, e.Do("alice", "GET", "/v2/images/"+id+"/tasks", nil))["tasks"].([]any); len(tasks) != 0 {
			t.Errorf("tasks after refused copies: %v", tasks)
		}
		if im := e.image(id); im["stores"] != "fast" || im["os_glance_import_task"] != nil {
			t.Errorf("image after refused copies: %v", im)
		}
		// all_stores leaves read-only stores out rather than failing.
		e.Must(202, e.Do("admin", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"copy-image"},"all_stores":true}`))
		if im := e.waitImage(id, importDone); im["stores"] != "cheap,fast,flaky,reliable" {
			t.Errorf("copy to all stores: %v", im)
		}
	})
}

// webImport starts a web-download of uri into a new image and waits for
// the import to end; it returns the image and its (one) task.
func webImport(e *env, uri string) (im, task map[string]any) {
	e.t.Helper()
	id := e.create("alice", rawImage)
	e.Must(202, e.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"web-download","uri":"`+uri+`"}}`))
	im = e.waitImage(id, importDone)
	tasks := e.MustJSON(200, e.Do("alice", "GET", "/v2/images/"+id+"/tasks", nil))["tasks"].([]any)
	if len(tasks) != 1 {
		e.t.Fatalf("tasks: %v", tasks)
	}
	return im, tasks[0].(map[string]any)
}

// TestWebDownloadRedirects: a redirect is followed only to a host
// allowed_import_hosts lists; a redirect elsewhere (here: a server holding
// something internal) fails the import with the reason in its task, and
// the other host is never asked.
func TestWebDownloadRedirects(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, "")
		var internalHits atomic.Int32
		internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			internalHits.Add(1)
			w.Write([]byte("ashlar_internal_metric 1\n"))
		}))
		defer internal.Close()
		data := bytes.Repeat([]byte("img"), 1000)
		allowed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/away":
				http.Redirect(w, r, internal.URL+"/metrics", http.StatusFound)
			case "/here":
				http.Redirect(w, r, "/img", http.StatusFound)
			default:
				w.Write(data)
			}
		}))
		defer allowed.Close()
		e.cfg.Image.AllowedImportHosts = []string{strings.TrimPrefix(allowed.URL, "http://")}

		im, task := webImport(e, allowed.URL+"/away")
		if im["status"] != "queued" || im["os_glance_failed_import"] != "fast" || im["size"] != nil ||
			!strings.Contains(task["message"].(string), "redirects to a host that is not allowed") {
			t.Errorf("redirect to a host not allowed: image %v, task %v", im, task["message"])
		}
		if n := internalHits.Load(); n != 0 {
			t.Errorf("the host not allowed was asked %d times", n)
		}
		if strings.Contains(task["message"].(string), internal.URL) {
			t.Errorf("the task names the internal address: %v", task["message"])
		}
		// A redirect within the allowed host is followed.
		if im, _ := webImport(e, allowed.URL+"/here"); im["status"] != "active" || im["size"] != float64(len(data)) {
			t.Errorf("redirect within the allowed host: %v", im)
		}
	})
}

// TestWebDownloadAddressCheck: a name allowed_import_hosts lists without
// a port (ports 80 and 443) that resolves to a loopback address is not
// connected to; the refusal is the task's reason.
func TestWebDownloadAddressCheck(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, "")
		e.cfg.Image.AllowedImportHosts = []string{"localhost"}
		im, task := webImport(e, "http://localhost/img")
		if im["status"] != "queued" || im["os_glance_failed_import"] != "fast" ||
			!strings.Contains(task["message"].(string), "resolves to an address that is not allowed") {
			t.Errorf("web-download from a name resolving to loopback: %v, task %v", im, task["message"])
		}
	})
}

// TestFetchClientAddresses checks the web-download client itself: a name
// that resolves to loopback is refused unless host:port is listed
// explicitly (by name or address), at every connection.
func TestFetchClientAddresses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	for _, c := range []struct {
		allowed []string
		ok      bool
	}{
		{nil, false},
		{[]string{"localhost"}, false},
		{[]string{"localhost:1"}, false},
		{[]string{"localhost:" + port}, true},
		{[]string{"127.0.0.1:" + port, "[::1]:" + port}, true},
	} {
		s := &Service{cfg: &config.Config{Image: config.Image{AllowedImportHosts: c.allowed}}}
		res, err := s.newFetchClient().Get("http://localhost:" + port + "/")
		if err == nil {
			res.Body.Close()
		}
		if (err == nil) != c.ok {
			t.Errorf("allowed %v: %v, want ok=%v", c.allowed, err, c.ok)
		}
	}
}

func TestBlockedAddr(t *testing.T) {
	for addr, blocked := range map[string]bool{
		"127.0.0.1": true, "127.3.4.5": true, "::1": true, "169.254.169.254": true, "fe80::1": true,
		"0.0.0.0": true, "0.1.2.3": true, "::": true, "224.0.0.1": true, "ff02::1": true, "255.255.255.255": true,
		"::ffff:127.0.0.1": true, "fd00:ec2::254": true, "100.100.100.200": true, "168.63.129.16": true,
		"10.1.2.3": false, "192.168.1.1": false, "8.8.8.8": false, "2001:db8::1": false,
	} {
		if got := blockedAddr(netip.MustParseAddr(addr)); got != blocked {
			t.Errorf("%s: blocked %v, want %v", addr, got, blocked)
		}
	}
}

// TestWebDownloadStall: a source that sends 64 KiB and then nothing fails
// the import after the stall timeout; the image goes back to queued with
// the reason recorded, and nothing stays staged.
func TestWebDownloadStall(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, "")
		release := make(chan struct{})
		src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1048576")
			w.Write(make([]byte, 64<<10))
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer src.Close()
		defer close(release)
		e.cfg.Image.AllowedImportHosts = []string{strings.TrimPrefix(src.URL, "http://")}
		e.svc.StallTimeout = 300 * time.Millisecond
		defer func() { e.svc.StallTimeout = DefaultStallTimeout }()
		start := time.Now()
		im, task := webImport(e, src.URL+"/img")
		if im["status"] != "queued" || im["os_glance_failed_import"] != "fast" || task["status"] != "failure" ||
			!strings.Contains(task["message"].(string), "sent no data for 300ms") {
			t.Errorf("stalled source: %v, task %v %v", im, task["status"], task["message"])
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("the stall took %v to notice", took)
		}
		if objs := e.objects("os_glance_staging_store"); len(objs) != 0 {
			t.Errorf("staging left: %v", objs)
		}
		apitest.Eventually(t, 5*time.Second, func() bool { return unfinishedTasks(t, d, kindImport) == 0 },
			func() string { return "the import's task is still unfinished" })
	})
}
