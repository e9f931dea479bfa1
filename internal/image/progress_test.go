package image

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

// A running import shows its bytes and percent in its Glance task's
// message, where `glance task-show` and the image tasks API already look.
func TestImportTaskShowsProgress(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, "")
		data := []byte(strings.Repeat("p", 64<<10))
		release := make(chan struct{})
		src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.Write(data[:len(data)/2])
			w.(http.Flusher).Flush()
			<-release // the second half waits for the test
			w.Write(data[len(data)/2:])
		}))
		defer src.Close()
		defer func() {
			select {
			case <-release:
			default:
				close(release)
			}
		}()
		e.cfg.Image.AllowedImportHosts = []string{strings.TrimPrefix(src.URL, "http://")}
		id := e.create("alice", rawImage)
		e.Must(202, e.Do("alice", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"web-download","uri":"`+src.URL+`/img"}}`))
		var msg any
		apitest.Eventually(t, 15*time.Second, func() bool {
			tasks, _ := e.MustJSON(200, e.Do("alice", "GET", "/v2/images/"+id+"/tasks", nil))["tasks"].([]any)
			if len(tasks) == 0 {
				return false
			}
			msg = apitest.Dig(tasks[0], "message")
			s, _ := msg.(string)
			// staging, then one store: the half staged is a quarter of it
			return strings.Contains(s, "copied 32.0 KiB of 128.0 KiB (25%)")
		}, func() string { return "task message: " + toString(msg) })
		close(release)
		im := e.waitImage(id, importDone)
		if im["status"] != "active" {
			t.Fatalf("import: %v", im)
		}
		tasks, _ := e.MustJSON(200, e.Do("alice", "GET", "/v2/images/"+id+"/tasks", nil))["tasks"].([]any)
		if apitest.Dig(tasks[0], "status") != "success" {
			t.Errorf("finished task: %v", tasks[0])
		}
	})
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}

// Stores detail adds, per store, what it holds and its health as last
// checked: a store whose directory is gone is unhealthy; a store whose
// driver cannot check (http) is unknown.
func TestStoresDetailAshlar(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, "")
		id := e.create("alice", rawImage)
		e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/file", strings.Repeat("z", 1000), "Content-Type", "application/octet-stream"))
		cheap := e.cfg.Stores[1]
		dir := cheap.Options["filesystem_store_datadir"]
		if dir == "" {
			dir = cheap.StateDir
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		e.svc.checkStores(t.Context())
		stores, _ := e.MustJSON(200, e.Do("admin", "GET", "/v2/info/stores/detail", nil))["stores"].([]any)
		got := map[string]map[string]any{}
		for _, s := range stores {
			got[apitest.Dig(s, "id").(string)] = apitest.Dig(s, "ashlar").(map[string]any)
		}
		if f := got["fast"]; f["images"] != float64(1) || f["bytes"] != float64(1000) || f["health"] != "healthy" ||
			f["free_bytes"].(float64) <= 0 || f["checked_at"] == nil {
			t.Errorf("fast: %v", f)
		}
		if c := got["cheap"]; c["images"] != float64(0) || c["health"] != "unhealthy" || c["health_error"] == "" {
			t.Errorf("cheap: %v", c)
		}
		if w := got["web"]; w["health"] != "unknown" || w["free_bytes"] != nil {
			t.Errorf("web: %v", w)
		}
		// The plain list is Glance's, unchanged.
		if b := string(e.Must(200, e.Do("alice", "GET", "/v2/info/stores", nil)).Body); strings.Contains(b, "ashlar") {
			t.Errorf("stores info: %s", b)
		}
	})
}
