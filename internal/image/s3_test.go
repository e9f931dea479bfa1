package image

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/testenv"
)

// TestS3Store runs the data path against a real S3 server (the pinned
// MinIO): upload with X-Image-Meta-Store, ranged download, copy-image from
// S3 into a file store, removal of the S3 copy, and delete.
func TestS3Store(t *testing.T) {
	m := testenv.StartMinIO(t)
	dbtest.ForEach(t, func(t *testing.T, d *db.DB) {
		e := newEnvWith(t, d, ", obj:s3", `show_multiple_locations = true
[store:obj]
store_description = Object store
s3_store_host = `+m.Endpoint+`
s3_store_bucket = images-`+strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-")+`
s3_store_access_key = `+m.AccessKey+`
s3_store_secret_key = `+m.SecretKey+`
s3_store_create_bucket_on_put = true
s3_store_region = `+m.Region+`
`)
		data := bytes.Repeat([]byte("s3-image-"), 300000) // 2.7 MB
		id := e.create("alice", rawImage)
		e.Must(204, e.Do("alice", "PUT", "/v2/images/"+id+"/file", data, "X-Image-Meta-Store", "obj"))
		im := e.image(id)
		loc := im["locations"].([]any)[0].(map[string]any)
		if im["stores"] != "obj" || im["status"] != "active" || strings.Contains(loc["url"].(string), m.SecretKey) {
			t.Errorf("s3 image: %v", im)
		}
		r := e.Must(206, e.Do("alice", "GET", "/v2/images/"+id+"/file", nil, "Range", "bytes=9-17"))
		if string(r.Body) != "s3-image-" {
			t.Errorf("range from s3: %q", r.Body)
		}
		e.Must(202, e.Do("admin", "POST", "/v2/images/"+id+"/import", `{"method":{"name":"copy-image"},"stores":["fast"]}`))
		e.waitImage(id, func(m map[string]any) bool { return m["stores"] == "fast,obj" && m["os_glance_import_task"] == nil })
		obj, _ := e.svc.stores.Get("obj")
		if n, err := obj.Size(t.Context(), id); err != nil || n != int64(len(data)) {
			t.Errorf("object in s3: %d %v", n, err)
		}
		e.Must(204, e.Do("alice", "DELETE", "/v2/stores/obj/"+id, nil))
		if _, err := obj.Size(t.Context(), id); !errs.Is(err, errs.NotFound) {
			t.Errorf("s3 copy still there after store delete: %v", err)
		}
		r = e.Must(200, e.Do("alice", "GET", "/v2/images/"+id+"/file", nil))
		if !bytes.Equal(r.Body, data) {
			t.Errorf("download after removing the s3 copy: %d bytes", len(r.Body))
		}
		e.Must(204, e.Do("alice", "DELETE", "/v2/images/"+id, nil))
	})
}
