package volume

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/image"
	"github.com/ashlar-dev/ashlar/internal/image/store/drivers"
	"github.com/ashlar-dev/ashlar/internal/service"
)

// TestStoresWithAshlarImageService runs the volume service against
// Ashlar's real image service (in process, over HTTP): store validation
// from GET /v2/info/stores and uploads landing in the type's store.
func TestStoresWithAshlarImageService(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		dir := t.TempDir()
		web := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(web.Close)
		imgSrv := httptest.NewUnstartedServer(nil)
		cfg, err := config.Parse(`
[image]
enabled_backends = fast:file, cheap:file, web:http
default_backend = fast
[store:web]
http_store_base_url = `+web.URL+`
[volume]
glance_api_servers = http://`+imgSrv.Listener.Addr().String()+`
enabled_backends = local
[backend:local]
volumes_dir = `+filepath.Join(dir, "vols")+`
`, dir)
		if err != nil {
			t.Fatal(err)
		}
		logger := slog.New(slog.NewTextHandler(io.Discard, nil))
		deps := service.Deps{Config: cfg, DB: d, Logger: logger, Registry: prometheus.NewRegistry(), Validator: testTokens}
		isvc, err := image.New(ctx, deps, drivers.Factories())
		if err != nil {
			t.Fatal(err)
		}
		imgSrv.Config.Handler = api.Wrap("image", isvc.Handler(), logger, nil, api.Glance)
		imgSrv.Start()
		t.Cleanup(imgSrv.Close)
		deps.Registry = prometheus.NewRegistry()
		vsvc, err := New(ctx, deps)
		if err != nil {
			t.Fatal(err)
		}
		e := &env{t: t, svc: vsvc, db: d, dir: dir, h: api.Wrap("volume", vsvc.Handler(), logger, nil, api.Cinder)}
		e.start()
		t.Cleanup(e.stop)

		typ := e.createType("to-cheap", nil)
		specs := "/v3/" + projA + "/types/" + typ + "/extra_specs"
		for store, want := range map[string]int{"nope": 404, "web": 400, "FAST": 404, "cheap": 200} {
			if r := e.do("admin", "POST", specs, map[string]any{"extra_specs": map[string]any{StoreSpec: store}}); r.Code != want {
				t.Errorf("store %s: %d %s", store, r.Code, r.Body)
			}
		}
		imageStores := func(imageID string) map[string]any {
			deadline := time.Now().Add(60 * time.Second)
			for {
				req, _ := http.NewRequest("GET", imgSrv.URL+"/v2/images/"+imageID, nil)
				req.Header.Set("X-Auth-Token", "member")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var m map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&m)
				resp.Body.Close()
				if m["status"] == "active" || time.Now().After(deadline) {
					return m
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		for typeName, wantStore := range map[string]string{"to-cheap": "cheap", "__DEFAULT__": "fast"} {
			v := e.createVolume("member", projA, map[string]any{"volume_type": typeName}, "available")
			id := v["id"].(string)
			r := e.do("member", "POST", "/v3/"+projA+"/volumes/"+id+"/action",
				map[string]any{"os-volume_upload_image": map[string]any{"image_name": "from-" + typeName, "disk_format": "qcow2"}})
			imgID := e.must(202, r)["os-volume_upload_image"].(map[string]any)["image_id"].(string)
			img := imageStores(imgID)
			if img["status"] != "active" || img["stores"] != wantStore || img["disk_format"] != "qcow2" {
				t.Errorf("%s: image %v", typeName, img)
			}
			e.waitStatus("member", projA, id, "available")
		}

		// Round trip through qcow2: raw image -> volume -> qcow2 image in
		// cheap -> new volume (qemu-img conversion) with the same bytes.
		data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		call := func(method, path, ctype string, body []byte) map[string]any {
			req, _ := http.NewRequest(method, imgSrv.URL+path, bytes.NewReader(body))
			req.Header.Set("X-Auth-Token", "member")
			req.Header.Set("Content-Type", ctype)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode >= 300 {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
			}
			var m map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&m)
			return m
		}
		raw := call("POST", "/v2/images", "application/json", []byte(`{"name": "raw-src", "disk_format": "raw", "container_format": "bare"}`))["id"].(string)
		call("PUT", "/v2/images/"+raw+"/file", "application/octet-stream", data)
		src := e.createVolume("member", projA, map[string]any{"imageRef": raw, "volume_type": "to-cheap"}, "available")
		r := e.do("member", "POST", "/v3/"+projA+"/volumes/"+src["id"].(string)+"/action",
			map[string]any{"os-volume_upload_image": map[string]any{"image_name": "q", "disk_format": "qcow2"}})
		q := e.must(202, r)["os-volume_upload_image"].(map[string]any)["image_id"].(string)
		if img := imageStores(q); img["stores"] != "cheap" {
			t.Fatalf("qcow2 image %v", img)
		}
		back := e.createVolume("member", projA, map[string]any{"imageRef": q}, "available")
		if got := e.readVolume(back["id"].(string), int64(len(data))); !bytes.Equal(got, data) {
			t.Errorf("round trip through qcow2 changed the data")
		}
	})
}
