package image

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// TestViewGolden pins the exact image body: custom properties first (sorted),
// Glance's key order, null for unset values, stores last and sorted.
func TestViewGolden(t *testing.T) {
	ts := db.Timestamp{Time: time.Date(2026, 11, 24, 18, 12, 38, 123456000, time.UTC)}
	im := &Image{ID: "0dd8dca9-f56a-4643-888c-11d0fba618dd", Name: strp("t1"), Status: StatusActive, Visibility: "private",
		Owner: "admin", DiskFormat: strp("raw"), ContainerFormat: strp("bare"), Size: i64p(24), VirtualSize: i64p(24),
		Checksum: strp("97fca526c6f4b6291ca1d7327268f7c7"), HashAlgo: strp("sha512"), HashValue: strp("abc"),
		CreatedAt: ts, UpdatedAt: ts, Props: map[string]string{"foo": "bar", "a": "b", "os_glance_stage_host": "hidden"},
		Tags: []string{"a"}, Locations: []Location{{Store: "fast", URL: "file:///f/0dd8"}, {Store: "cheap", URL: "file:///c/0dd8"}}}
	b, err := json.Marshal((&Service{}).view(im))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a":"b","foo":"bar","name":"t1","disk_format":"raw","container_format":"bare","visibility":"private",` +
		`"size":24,"virtual_size":24,"status":"active","checksum":"97fca526c6f4b6291ca1d7327268f7c7","protected":false,` +
		`"min_ram":0,"min_disk":0,"owner":"admin","os_hidden":false,"os_hash_algo":"sha512","os_hash_value":"abc",` +
		`"id":"0dd8dca9-f56a-4643-888c-11d0fba618dd","created_at":"2026-11-24T18:12:38Z","updated_at":"2026-11-24T18:12:38Z",` +
		`"locations":[{"url":"file:///f/0dd8","metadata":{"store":"fast"}},{"url":"file:///c/0dd8","metadata":{"store":"cheap"}}],` +
		`"direct_url":"file:///f/0dd8","tags":["a"],"self":"/v2/images/0dd8dca9-f56a-4643-888c-11d0fba618dd",` +
		`"file":"/v2/images/0dd8dca9-f56a-4643-888c-11d0fba618dd/file","schema":"/v2/schemas/image","stores":"cheap,fast"}`
	if string(b) != want {
		t.Errorf("view\n got %s\nwant %s", b, want)
	}
}
