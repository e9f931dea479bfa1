package volume

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/image"
	"github.com/ashlar-dev/ashlar/internal/image/store/drivers"
)

// TestStoresWithAshlarImageService runs the volume service against
// Ashlar's real image service (in process, over HTTP): store validation
// from GET /v2/info/stores and uploads landing in the type's store.
func TestStoresWithAshlarImageService(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		web := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(web.Close)
		imgSrv := httptest.NewUnstartedServer(nil)
		cfg, dir := testConfig(t, `
[image]
enabled_backends = fast:file, cheap:file, web:http
default_backend = fast
[store:web]
http_store_base_url = `+web.URL+`
[volume]
glance_api_servers = http://`+imgSrv.Listener.Addr().String())
		deps := testDeps(cfg, d, testTokens)
		isvc, err := image.New(ctx, deps, drivers.Factories())
		if err != nil {
			t.Fatal(err)
		}
		imgSrv.Config.Handler = api.Wrap("image", isvc.Handler(), deps.Logger, nil, api.Glance)
		imgSrv.Start()
		t.Cleanup(imgSrv.Close)
		vsvc, err := New(ctx, testDeps(cfg, d, testTokens))
		if err != nil {
			t.Fatal(err)
		}
		e := newEnvFor(t, vsvc, nil, d, dir)
		glance := &apitest.Client{T: t, URL: imgSrv.URL}

		typ := e.createType("to-cheap", nil)
		specs := "/v3/" + projA + "/types/" + typ + "/extra_specs"
		for store, want := range map[string]int{"nope": 404, "web": 400, "FAST": 404, "cheap": 200} {
			if r := e.Do("admin", "POST", specs, map[string]any{"extra_specs": map[string]any{StoreSpec: store}}); r.Code != want {
				t.Errorf("store %s: %d %s", store, r.Code, r.Body)
			}
		}
		imageStores := func(imageID string) map[string]any {
			var m map[string]any
			apitest.Eventually(t, 60*time.Second, func() bool {
				m = glance.MustJSON(200, glance.Do("member", "GET", "/v2/images/"+imageID, nil))
				return m["status"] == "active"
			}, func() string { return fmt.Sprint(m) })
			return m
		}
		for typeName, wantStore := range map[string]string{"to-cheap": "cheap", "__DEFAULT__": "fast"} {
			v := e.createVolume("member", projA, map[string]any{"volume_type": typeName}, "available")
			id := v["id"].(string)
			r := e.Do("member", "POST", "/v3/"+projA+"/volumes/"+id+"/action",
				map[string]any{"os-volume_upload_image": map[string]any{"image_name": "from-" + typeName, "disk_format": "qcow2"}})
			imgID := e.MustJSON(202, r)["os-volume_upload_image"].(map[string]any)["image_id"].(string)
			img := imageStores(imgID)
			if img["status"] != "active" || img["stores"] != wantStore || img["disk_format"] != "qcow2" {
				t.Errorf("%s: image %v", typeName, img)
			}
			e.waitStatus("member", projA, id, "available")
		}

		// Round trip through qcow2: raw image -> volume -> qcow2 image in
		// cheap -> new volume (qemu-img conversion) with the same bytes.
		data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		raw := glance.MustJSON(201, glance.Do("member", "POST", "/v2/images", `{"name": "raw-src", "disk_format": "raw", "container_format": "bare"}`))["id"].(string)
		glance.Must(204, glance.Do("member", "PUT", "/v2/images/"+raw+"/file", data))
		src := e.createVolume("member", projA, map[string]any{"imageRef": raw, "volume_type": "to-cheap"}, "available")
		r := e.Do("member", "POST", "/v3/"+projA+"/volumes/"+src["id"].(string)+"/action",
			map[string]any{"os-volume_upload_image": map[string]any{"image_name": "q", "disk_format": "qcow2"}})
		q := e.MustJSON(202, r)["os-volume_upload_image"].(map[string]any)["image_id"].(string)
		if img := imageStores(q); img["stores"] != "cheap" {
			t.Fatalf("qcow2 image %v", img)
		}
		back := e.createVolume("member", projA, map[string]any{"imageRef": q}, "available")
		if got := e.readVolume(back["id"].(string), int64(len(data))); !bytes.Equal(got, data) {
			t.Errorf("round trip through qcow2 changed the data")
		}
	})
}

// An image endpoint that is no usable URL (here the token catalog's) is
// the client's error wherever the image service is needed; a rejected
// upload leaves the volume as it was.
func TestUnusableImageEndpoint(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		cfg, dir := testConfig(t, "")
		catalog := []auth.CatalogEntry{{Type: "image", Endpoints: []auth.Endpoint{{Interface: "public", URL: "no-url"}}}}
		tokens := auth.Static{
			"admin":  {UserID: "u-admin", ProjectID: projA, Roles: []string{"admin"}, Catalog: catalog},
			"member": {UserID: "u-member", ProjectID: projA, Roles: []string{"member"}, Catalog: catalog},
		}
		svc, err := New(context.Background(), testDeps(cfg, d, tokens))
		if err != nil {
			t.Fatal(err)
		}
		e := newEnvFor(t, svc, nil, d, dir)
		const msg = `invalid image service URL "no-url"`
		id := e.createVolume("member", projA, map[string]any{}, "available")["id"].(string)
		for _, c := range []struct {
			name, token, path string
			body              any
		}{
			{"type with store", "admin", "/types", map[string]any{"volume_type": map[string]any{"name": "t", "extra_specs": map[string]any{StoreSpec: "fast"}}}},
			{"volume from image", "member", "/volumes", map[string]any{"volume": map[string]any{"imageRef": "0b7e0c1e-6d1f-4d3c-9f1b-7b7e8e0e0e0e"}}},
			{"upload to image", "member", "/volumes/" + id + "/action", map[string]any{"os-volume_upload_image": map[string]any{"image_name": "i"}}},
		} {
			r := e.Do(c.token, "POST", "/v3/"+projA+c.path, c.body)
			if fault, m := errMessage(t, r); r.Code != 400 || fault != "badRequest" || m != msg {
				t.Errorf("%s: %d %s, want 400 %q", c.name, r.Code, r.Body, msg)
			}
		}
		if v := e.MustJSON(200, e.Do("member", "GET", "/v3/"+projA+"/volumes/"+id, nil))["volume"].(map[string]any); v["status"] != "available" {
			t.Errorf("volume after the rejected upload: %v", v["status"])
		}
	})
}
