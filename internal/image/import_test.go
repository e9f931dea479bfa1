package image

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
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
)

func importDone(m map[string]any) bool {
	return m["os_glance_import_task"] == nil && m["status"] != "importing"
}

func TestImport(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, "")
		data := bytes.Repeat([]byte("stage"), 20000)

		t.Run("glance-direct to several stores", func(t *testing.T) {
			id := e.create("alice", rawImage)
			e.Must(409, e.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"glance-direct"}}`))
			e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/stage", data))
			im := e.image(id)
			if im["status"] != "uploading" || im["size"] != float64(len(data)) {
				t.Errorf("staged: %v", im)
			}
			e.Must(409, e.Do("alice", "PUT", "/v2/images/"+id+"/stage", data))
			e.Must(204, e.Do("alice", "GET", "/v2/images/"+id+"/file", nil))
			for body, code := range map[string]int{
				`{"method":{"name":"nosuch-method"}}`:                                     400,
				`{"method":{"name":"glance-direct"},"stores":["nosuch"]}`:                 409,
				`{"method":{"name":"glance-direct"},"stores":"fast"}`:                     400,
				`{"method":{"name":"glance-direct"},"stores":["fast"],"all_stores":true}`: 400,
			} {
				e.Must(code, e.Do("alice", "POST", "/v2/images/"+id+"/import", body))
			}
			e.Must(202, e.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"glance-direct"},"stores":["reliable","cheap"]}`))
			im = e.waitImage(id, importDone)
			if im["status"] != "active" || im["stores"] != "cheap,reliable" || im["os_glance_failed_import"] != "" || im["os_glance_importing_to_stores"] != "" {
				t.Errorf("imported: %v", im)
			}
			// The staged data goes once the import is recorded as done.
			apitest.Eventually(t, 5*time.Second, func() bool { return len(e.objects("os_glance_staging_store")) == 0 },
				func() string { return fmt.Sprintf("staging left: %v", e.objects("os_glance_staging_store")) })
			tasks := e.Must(200, e.Do("alice", "GET", "/v2/images/"+id+"/tasks", nil)).JSON(t)["tasks"].([]any)
			if len(tasks) != 1 || tasks[0].(map[string]any)["status"] != "success" {
				t.Errorf("tasks: %v", tasks)
			}
		})

		t.Run("all_stores_must_succeed with a failing store", func(t *testing.T) {
			e.flaky.failKind, e.flaky.failAfter = errs.TooLarge, 1000
			defer func() { e.flaky.failKind = 0 }()
			id := e.create("alice", rawImage)
			e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/stage", data))
			e.Must(202, e.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"glance-direct"},"stores":["fast","flaky"],"all_stores_must_succeed":true}`))
			im := e.waitImage(id, importDone)
			// Unlike Zed (wedged in importing), the image can be imported again.
			if im["status"] != "uploading" || im["os_glance_failed_import"] != "flaky" || im["stores"] != nil {
				t.Errorf("after failed import: %v", im)
			}
			if objs := e.objects("fast"); len(objs) != 0 {
				t.Errorf("rollback left objects in fast: %v", objs)
			}
			e.Must(202, e.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"glance-direct"},"stores":["fast","flaky"],"all_stores_must_succeed":false}`))
			im = e.waitImage(id, importDone)
			if im["status"] != "active" || im["stores"] != "fast" || im["os_glance_failed_import"] != "flaky" {
				t.Errorf("partial import: %v", im)
			}
			// copy-image into a failing store keeps the image active.
			e.Must(202, e.Do("admin", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"copy-image"},"stores":["flaky"],"all_stores_must_succeed":true}`))
			im = e.waitImage(id, importDone)
			if im["status"] != "active" || im["stores"] != "fast" || im["os_glance_failed_import"] != "flaky" {
				t.Errorf("failed copy: %v", im)
			}
			e.Must(400, e.Do("admin", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"copy-image"},"stores":["fast"]}`))
			e.Must(403, e.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"copy-image"},"stores":["cheap"]}`))
		})

		t.Run("web-download", func(t *testing.T) {
			src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/img" {
					http.NotFound(w, r)
					return
				}
				w.Write(data)
			}))
			defer src.Close()
			// Only the listed host:port may be fetched from.
			e.cfg.Image.AllowedImportHosts = []string{strings.TrimPrefix(src.URL, "http://")}
			id := e.create("alice", rawImage)
			r := e.Must(400, e.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"web-download","uri":"file:///etc/passwd"}}`))
			if !strings.Contains(string(r.Body), "does not pass filtering") {
				t.Errorf("filter: %s", r.Body)
			}
			// A host the config does not list is never fetched: the task fails.
			e.Must(202, e.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"web-download","uri":"http://does-not.exist/img"}}`))
			if im := e.waitImage(id, importDone); im["status"] != "queued" || im["os_glance_failed_import"] != "fast" {
				t.Errorf("filtered web-download: %v", im)
			}
			e.Must(202, e.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"web-download","uri":"`+src.URL+`/img"},"stores":["cheap","reliable"]}`))
			im := e.waitImage(id, importDone)
			if im["status"] != "active" || im["stores"] != "cheap,reliable" || im["size"] != float64(len(data)) {
				t.Errorf("web-download: %v", im)
			}
			bad := e.create("alice", rawImage)
			e.Must(202, e.Do("alice", "POST", "/v2/images/"+bad+"/import", `{"method":{"name":"web-download","uri":"`+src.URL+`/missing"}}`))
			im = e.waitImage(bad, importDone)
			if im["status"] != "queued" || im["os_glance_failed_import"] != "fast" {
				t.Errorf("failed web-download: %v", im)
			}
		})

		// What a process killed mid-import leaves: the image importing,
		// its lock and pending stores set, the Glance task processing, the
		// import's task held by the dead node, a temp file in fast.
		crashedImport := func(t *testing.T, attempts int) string {
			id := e.create("alice", rawImage)
			e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/stage", data))
			// The process dies now: no runner may see the rows below
			// before the next start.
			e.stop()
			ctx := t.Context()
			if _, err := d.ExecContext(ctx, "UPDATE images SET status = 'importing' WHERE id = ?", id); err != nil {
				t.Fatal(err)
			}
			if err := setProps(ctx, d, id, map[string]*string{propTask: strp("t-" + id), propImporting: strp("fast,cheap"), propFailed: strp("")}); err != nil {
				t.Fatal(err)
			}
			now := db.Now()
			if err := insertTask(ctx, d, task{ID: "t-" + id, ImageID: id, Type: "api_image_import", Status: "processing",
				Owner: "p1", UserID: "u", RequestID: "r", Input: "{}", CreatedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
			addTask(t, d, kindImport, id, importWork{TaskID: "t-" + id, Method: "glance-direct", Stores: []string{"fast", "cheap"},
				MustAll: true, ProjectID: "p1", UserID: "u"}, "dead-node", time.Now().Add(-time.Second))
			if _, err := d.ExecContext(ctx, "UPDATE tasks SET attempts = ? WHERE subject = ?", attempts, id); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(e.state, "images", "fast", ".ashlar-tmp-dead"), data[:100], 0o600); err != nil {
				t.Fatal(err)
			}
			return id
		}
		glanceTask := func(t *testing.T, id string) map[string]any {
			tasks := e.Must(200, e.Do("alice", "GET", "/v2/images/"+id+"/tasks", nil)).JSON(t)["tasks"].([]any)
			if len(tasks) != 1 {
				t.Fatalf("tasks of %s: %v", id, tasks)
			}
			return tasks[0].(map[string]any)
		}
		t.Run("import resumed after a crash", func(t *testing.T) {
			id := crashedImport(t, 1)
			e.start()
			im := e.waitImage(id, importDone)
			if im["status"] != "active" || im["stores"] != "cheap,fast" || im["os_glance_failed_import"] != "" {
				t.Errorf("resumed import: %v", im)
			}
			if st := glanceTask(t, id)["status"]; st != "success" {
				t.Errorf("resumed task: %v", st)
			}
			if objs := e.objects("fast"); slices.Contains(objs, ".ashlar-tmp-dead") {
				t.Errorf("the dead writer's temp file is left: %v", objs)
			}
		})
		t.Run("import interrupted too often", func(t *testing.T) {
			id := crashedImport(t, 3)
			e.start()
			im := e.waitImage(id, importDone)
			if im["status"] != "uploading" || im["os_glance_import_task"] != nil || im["os_glance_failed_import"] != "fast,cheap" {
				t.Errorf("after giving up: %v", im)
			}
			if gt := glanceTask(t, id); gt["status"] != "failure" || !strings.Contains(fmt.Sprint(gt["message"]), "node running it stopped") {
				t.Errorf("interrupted task: %v", gt)
			}
			if objs := e.objects("fast"); slices.Contains(objs, ".ashlar-tmp-dead") || slices.Contains(objs, id) {
				t.Errorf("partial copies left: %v", objs)
			}
			// The staged data survived: the import can be run again.
			e.Must(202, e.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"glance-direct"}}`))
			if im := e.waitImage(id, importDone); im["status"] != "active" || im["stores"] != "fast" {
				t.Errorf("re-import: %v", im)
			}
		})
		t.Run("read-only store as a target", func(t *testing.T) {
			id := e.create("alice", rawImage)
			e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/stage", data))
			e.Must(202, e.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"glance-direct"},"stores":["fast","web"],"all_stores_must_succeed":false}`))
			if im := e.waitImage(id, importDone); im["status"] != "active" || im["stores"] != "fast" || im["os_glance_failed_import"] != "web" {
				t.Errorf("import into read-only store: %v", im)
			}
		})
		t.Run("all_stores", func(t *testing.T) {
			id := e.create("alice", rawImage)
			e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/stage", data))
			e.Must(202, e.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"glance-direct"},"all_stores":true}`))
			im := e.waitImage(id, importDone)
			if im["stores"] != "cheap,fast,flaky,reliable" {
				t.Errorf("all stores: %v", im["stores"])
			}
		})
	})
}
