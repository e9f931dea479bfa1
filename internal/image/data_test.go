package image

import (
	"bytes"
	"crypto/md5"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
)

const rawImage = `{"name":"x","disk_format":"raw","container_format":"bare"}`

func TestUploadDownload(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, "show_multiple_locations = true")
		data := bytes.Repeat([]byte("0123456789abcdefghijklmn"), 10000)
		id := e.create("alice", rawImage)
		e.Must(415, e.Do("alice", "PUT", "/v2/images/"+id+"/file", string(data)))
		r := e.Must(400, e.Do("alice", "PUT", "/v2/images/"+id+"/file", data, "X-Image-Meta-Store", "nosuch"))
		if !strings.Contains(string(r.Body), "Store for identifier nosuch not found") {
			t.Errorf("unknown store: %s", r.Body)
		}
		e.Must(410, e.Do("alice", "PUT", "/v2/images/"+id+"/file", data, "X-Image-Meta-Store", "web"))
		if st := e.image(id)["status"]; st != "queued" {
			t.Errorf("after 410: %v", st)
		}
		e.Must(204, e.Do("reader", "GET", "/v2/images/"+id+"/file", nil))
		// The size cap also applies when the length is announced up front.
		big := e.create("alice", rawImage)
		e.cfg.Image.ImageSizeCap = 1000
		e.Must(413, e.Do("alice", "PUT", "/v2/images/"+big+"/file", make([]byte, 1001)))
		e.cfg.Image.ImageSizeCap = 1 << 40
		// An empty upload makes an active 0-byte image (virtual_size unknown, like Glance).
		empty := e.create("alice", rawImage)
		e.Must(204, e.Do("alice", "PUT", "/v2/images/"+empty+"/file", []byte{}))
		if im := e.image(empty); im["status"] != "active" || im["size"] != float64(0) || im["virtual_size"] != nil ||
			im["checksum"] != "d41d8cd98f00b204e9800998ecf8427e" {
			t.Errorf("empty image: %v", im)
		}
		e.Must(200, e.Do("alice", "GET", "/v2/images/"+empty+"/file", nil))
		e.Must(403, e.Do("reader", "PUT", "/v2/images/"+id+"/file", data))
		e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/file", data, "X-Image-Meta-Store", "cheap"))
		e.Must(409, e.Do("alice", "PUT", "/v2/images/"+id+"/file", data))
		im := e.image(id)
		md := md5.Sum(data)
		sh := sha512.Sum512(data)
		if im["status"] != "active" || im["size"] != float64(len(data)) || im["virtual_size"] != float64(len(data)) ||
			im["checksum"] != hex.EncodeToString(md[:]) || im["os_hash_value"] != hex.EncodeToString(sh[:]) ||
			im["os_hash_algo"] != "sha512" || im["stores"] != "cheap" {
			t.Errorf("image after upload: %v", im)
		}
		loc := im["locations"].([]any)[0].(map[string]any)
		if loc["metadata"].(map[string]any)["store"] != "cheap" || !strings.HasPrefix(loc["url"].(string), "file://") {
			t.Errorf("location: %v", loc)
		}
		r = e.Must(200, e.Do("reader", "GET", "/v2/images/"+id+"/file", nil))
		if !bytes.Equal(r.Body, data) || r.Header.Get("Content-MD5") != hex.EncodeToString(md[:]) {
			t.Errorf("download: %d bytes, md5 %q", len(r.Body), r.Header.Get("Content-MD5"))
		}
		r = e.Must(206, e.Do("alice", "GET", "/v2/images/"+id+"/file", nil, "Range", "bytes=6-11"))
		if string(r.Body) != string(data[6:12]) || r.Header.Get("Content-Range") != fmt.Sprintf("bytes 6-11/%d", len(data)) {
			t.Errorf("range: %q %q", r.Body, r.Header.Get("Content-Range"))
		}
		r = e.Must(206, e.Do("alice", "GET", "/v2/images/"+id+"/file", nil, "Range", "bytes=-5"))
		if string(r.Body) != string(data[len(data)-5:]) {
			t.Errorf("suffix range: %q", r.Body)
		}
		e.Must(416, e.Do("alice", "GET", "/v2/images/"+id+"/file", nil, "Range", "bytes=999999999-"))
		e.Must(400, e.Do("alice", "GET", "/v2/images/"+id+"/file", nil, "Range", "bytes=0-1,3-4"))
		e.Must(405, e.Do("alice", "HEAD", "/v2/images/"+id+"/file", nil))

		// Deactivated images cannot be downloaded except by admins.
		e.Must(204, e.Do("alice", "POST", "/v2/images/"+id+"/actions/deactivate", nil))
		e.Must(403, e.Do("alice", "GET", "/v2/images/"+id+"/file", nil))
		e.Must(200, e.Do("admin", "GET", "/v2/images/"+id+"/file", nil))
		e.Must(204, e.Do("alice", "POST", "/v2/images/"+id+"/actions/reactivate", nil))

		// Copy to a second store, then delete one copy and the image.
		e.Must(202, e.Do("admin", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"copy-image"},"stores":["fast"]}`))
		e.waitImage(id, func(m map[string]any) bool { return m["stores"] == "cheap,fast" && m["os_glance_import_task"] == nil })
		e.Must(404, e.Do("alice", "DELETE", "/v2/stores/reliable/"+id, nil))
		e.Must(409, e.Do("alice", "DELETE", "/v2/stores/nosuch/"+id, nil))
		e.Must(404, e.Do("bob", "DELETE", "/v2/stores/cheap/"+id, nil))
		e.Must(204, e.Do("alice", "DELETE", "/v2/stores/cheap/"+id, nil))
		e.Must(403, e.Do("alice", "DELETE", "/v2/stores/fast/"+id, nil))
		if got := e.image(id)["stores"]; got != "fast" || len(e.objects("cheap")) != 0 {
			t.Errorf("after store delete: %v %v", got, e.objects("cheap"))
		}
		e.Must(204, e.Do("alice", "DELETE", "/v2/images/"+id, nil))
		if objs := e.objects("fast"); slices.Contains(objs, id) || len(objs) != 1 { // (the empty image stays)
			t.Errorf("objects left after delete: %v", objs)
		}
	})
}

// TestUploadFailures: every failure hands the image back as queued, leaves
// no object behind, answers with real Glance's status, and a later upload works.
func TestUploadFailures(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, "image_size_cap = 100000")
		data := bytes.Repeat([]byte{7}, 50000)
		cases := []struct {
			name string
			kind errs.Kind
			body []byte
			code int
			msg  string
		}{
			{"store full", errs.TooLarge, data, 413, "Image storage media is full"},
			{"store unreachable", errs.Unavailable, data, 503, "injected backend failure"},
			{"size cap", 0, bytes.Repeat([]byte{1}, 100001), 413, "The incoming image is too large"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				id := e.create("alice", rawImage)
				e.flaky.failKind, e.flaky.failAfter = c.kind, 20000
				// A chunked body (unknown length) so the cap is enforced while streaming.
				r := e.Do("alice", "PUT", "/v2/images/"+id+"/file", io.MultiReader(bytes.NewReader(c.body)), "X-Image-Meta-Store", "flaky")
				if r.Code != c.code || !strings.Contains(string(r.Body), c.msg) {
					t.Errorf("%d %s, want %d %q", r.Code, r.Body, c.code, c.msg)
				}
				if st := e.image(id)["status"]; st != "queued" {
					t.Errorf("status %v, want queued", st)
				}
				if objs := e.objects("flaky"); len(objs) != 0 {
					t.Errorf("objects left: %v", objs)
				}
				e.flaky.failKind = 0
				e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/file", data, "X-Image-Meta-Store", "flaky"))
				e.Must(204, e.Do("alice", "DELETE", "/v2/images/"+id, nil))
			})
		}
		t.Run("store unwritable", func(t *testing.T) {
			// A real file store whose directory has become a plain file.
			dir := filepath.Join(e.state, "images", "reliable")
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			id := e.create("alice", rawImage)
			r := e.Do("alice", "PUT", "/v2/images/"+id+"/file", data, "X-Image-Meta-Store", "reliable")
			if r.Code != 500 && r.Code != 503 {
				t.Errorf("unwritable store: %d %s", r.Code, r.Body)
			}
			if st := e.image(id)["status"]; st != "queued" {
				t.Errorf("status %v, want queued", st)
			}
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/file", data, "X-Image-Meta-Store", "reliable"))
		})
		t.Run("quota", func(t *testing.T) {
			e := newEnv(t, d, "user_storage_quota = 60000")
			a := e.create("bob", rawImage)
			e.Must(204, e.Do("bob", "PUT", "/v2/images/"+a+"/file", data))
			b := e.create("bob", rawImage)
			r := e.Must(413, e.Do("bob", "PUT", "/v2/images/"+b+"/file", data))
			if !strings.Contains(string(r.Body), "storage quota") || e.image(b)["status"] != "queued" {
				t.Errorf("quota: %s", r.Body)
			}
			// Fill the quota exactly; then even a chunked upload is refused.
			e.Must(204, e.Do("bob", "PUT", "/v2/images/"+b+"/file", data[:10000]))
			c := e.create("bob", rawImage)
			e.Must(413, e.Do("bob", "PUT", "/v2/images/"+c+"/file", bytes.NewReader(data[:10])))
			if st := e.image(c)["status"]; st != "queued" {
				t.Errorf("status %v after quota refusal", st)
			}
		})
		t.Run("client disconnect", func(t *testing.T) {
			id := e.create("alice", rawImage)
			conn := e.partialUpload(t, id, "file", data)
			e.waitImage(id, func(m map[string]any) bool { return m["status"] == "saving" })
			conn.Close()
			e.waitImage(id, func(m map[string]any) bool { return m["status"] == "queued" })
			if objs := e.objects("fast"); len(objs) != 0 {
				t.Errorf("objects left: %v", objs)
			}
			e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/file", data))
		})
		t.Run("client stall", func(t *testing.T) {
			e.svc.StallTimeout = 300 * time.Millisecond
			defer func() { e.svc.StallTimeout = DefaultStallTimeout }()
			id := e.create("alice", rawImage)
			e.partialUpload(t, id, "file", data)
			e.waitImage(id, func(m map[string]any) bool { return m["status"] == "saving" })
			// The connection stays open but sends nothing more.
			e.waitImage(id, func(m map[string]any) bool { return m["status"] == "queued" })
			// (the disconnect case above left one active image in fast)
			if objs := e.objects("fast"); len(objs) != 1 || objs[0] == id {
				t.Errorf("objects left: %v", objs)
			}
			e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/file", data))
		})
		for _, c := range []struct{ path, during, store string }{
			{"file", StatusSaving, "fast"},
			{"stage", StatusUploading, store.StagingID}, // issue 17: a killed stage wedged the image
		} {
			t.Run("crash recovery "+c.path, func(t *testing.T) {
				// A stalled upload is in flight when the process "dies"; the
				// next start finds the image saving (or uploading) and the
				// partial object.
				id := e.create("alice", rawImage)
				conn := e.partialUpload(t, id, c.path, data)
				e.waitImage(id, func(m map[string]any) bool { return m["status"] == c.during })
				e.start() // a new service over the same database and stores
				// Its runner rolls the dead one's upload back (at once on
				// SQLite, once the lease has run out on PostgreSQL).
				e.waitImage(id, func(m map[string]any) bool { return m["status"] == "queued" })
				apitest.Eventually(t, 5*time.Second, func() bool { return unfinishedTasks(t, d, kindUpload) == 0 },
					func() string { return "upload tasks unfinished after recovery" })
				conn.Close()
				apitest.Eventually(t, 5*time.Second, func() bool { return !slices.Contains(e.objects(c.store), id) && !hasTemp(e.objects(c.store)) },
					func() string { return fmt.Sprintf("partial data left in %s: %v", c.store, e.objects(c.store)) })
				// The image is usable again.
				e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/"+c.path, data))
			})
		}
		t.Run("other nodes", func(t *testing.T) {
			// Another node's live upload is left alone at start-up; a dead
			// node's (lease run out) is rolled back. SQLite serves one
			// node, whose predecessors' leases are all dead.
			if !d.Postgres() {
				t.Skip("several nodes share PostgreSQL only")
			}
			ctx := t.Context()
			live, dead := e.create("alice", rawImage), e.create("alice", rawImage)
			fast, _ := e.svc.stores.Get("fast")
			for _, c := range []struct {
				id    string
				until time.Time
			}{{live, time.Now().Add(time.Hour)}, {dead, time.Now().Add(-time.Second)}} {
				if _, err := d.ExecContext(ctx, "UPDATE images SET status = 'saving' WHERE id = ?", c.id); err != nil {
					t.Fatal(err)
				}
				addTask(t, d, kindUpload, c.id, uploadWork{storedObject{"fast", c.id}, StatusSaving}, "other-node", c.until)
				if _, err := fast.Put(ctx, c.id, bytes.NewReader(data[:100]), 0, "sha512"); err != nil {
					t.Fatal(err)
				}
			}
			e.start()
			e.waitImage(dead, func(m map[string]any) bool { return m["status"] == "queued" })
			if _, err := fast.Size(ctx, dead); !errs.Is(err, errs.NotFound) {
				t.Errorf("dead node's object: %v", err)
			}
			time.Sleep(3 * testLease)
			if st := e.image(live)["status"]; st != "saving" {
				t.Errorf("live upload of another node: %v", st)
			}
			if _, err := fast.Size(ctx, live); err != nil {
				t.Errorf("live node's object: %v", err)
			}
		})
	})
}

// TestS3Unreachable uploads into a real S3 driver whose server is down:
// 503 like Glance, the image back to queued, and the default store still works.
func TestS3Unreachable(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // nothing listens there any more
		e := newEnvWith(t, d, ", dead:s3", `
[store:dead]
s3_store_host = http://`+addr+`
s3_store_bucket = images
s3_store_access_key = k
s3_store_secret_key = s
`)
		id := e.create("alice", rawImage)
		data := bytes.Repeat([]byte{3}, 70000)
		r := e.Do("alice", "PUT", "/v2/images/"+id+"/file", data, "X-Image-Meta-Store", "dead")
		if r.Code != 503 {
			t.Errorf("upload to unreachable s3: %d %s", r.Code, r.Body)
		}
		if st := e.image(id)["status"]; st != "queued" {
			t.Errorf("status %v, want queued", st)
		}
		e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/file", data))
	})
}

// TestDownloadFirstReadableCopy: a copy that went missing from its store is
// skipped and the next one is served.
func TestDownloadFirstReadableCopy(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, "")
		data := bytes.Repeat([]byte("copy"), 5000)
		id := e.create("alice", rawImage)
		e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/file", data, "X-Image-Meta-Store", "cheap"))
		e.Must(202, e.Do("admin", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"copy-image"},"stores":["reliable"]}`))
		e.waitImage(id, func(m map[string]any) bool {
			return m["stores"] == "cheap,reliable" && m["os_glance_import_task"] == nil
		})
		if err := os.Remove(filepath.Join(e.state, "images", "cheap", id)); err != nil {
			t.Fatal(err)
		}
		r := e.Must(200, e.Do("alice", "GET", "/v2/images/"+id+"/file", nil))
		if !bytes.Equal(r.Body, data) {
			t.Errorf("served %d bytes", len(r.Body))
		}
		if err := os.Remove(filepath.Join(e.state, "images", "reliable", id)); err != nil {
			t.Fatal(err)
		}
		e.Must(404, e.Do("alice", "GET", "/v2/images/"+id+"/file", nil))
	})
}

// hasTemp reports whether a store listing holds a file store's temp file.
func hasTemp(names []string) bool {
	return slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, ".ashlar-tmp-") })
}
