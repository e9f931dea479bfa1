package image

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/db"
)

func goldenImage() *Image {
	ts := db.Timestamp{Time: time.Date(2026, 11, 24, 18, 12, 38, 123456000, time.UTC)}
	return &Image{ID: "0dd8dca9-f56a-4643-888c-11d0fba618dd", Name: strp("t1"), Status: StatusActive, Visibility: "private",
		Owner: "admin", DiskFormat: strp("raw"), ContainerFormat: strp("bare"), Size: i64p(24), VirtualSize: i64p(24),
		Checksum: strp("97fca526c6f4b6291ca1d7327268f7c7"), HashAlgo: strp("sha512"), HashValue: strp("abc"),
		CreatedAt: ts, UpdatedAt: ts, Props: map[string]string{"foo": "bar", "a": "b", "os_glance_stage_host": "hidden"},
		Tags: []string{"a"}, Locations: []Location{{Store: "fast", URL: "file:///f/0dd8"}, {Store: "cheap", URL: "file:///c/0dd8"}}}
}

// TestViewGolden pins the exact image body: custom properties first (sorted),
// Glance's key order, null for unset values, stores last and sorted; with
// show_multiple_locations and show_image_direct_url on, the owner sees
// locations and direct_url where Glance puts them.
func TestViewGolden(t *testing.T) {
	s := &Service{cfg: &config.Config{Image: config.Image{ShowMultipleLocations: true, ShowImageDirectURL: true}}}
	b := s.appendView(nil, tokens["admin"], goldenImage())
	if !json.Valid(b) {
		t.Fatalf("invalid JSON: %s", b)
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
	// What encoding/json makes of the same body (it would escape and
	// compact differently if the writer got either wrong).
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if re, _ := json.Marshal(v); len(re) != len(b) {
		t.Errorf("re-encoded body differs in length: %s", re)
	}
}

// TestViewLocations: locations and direct_url (server paths, buckets) are
// shown only when their option is on, and then only to admins and readers
// of the owning project (Glance's get_image_location), never to another
// project that sees the image.
func TestViewLocations(t *testing.T) {
	im := goldenImage()
	im.Owner = "p1"
	cases := []struct {
		name          string
		all, direct   bool
		caller        string
		locs, hasDURL bool
	}{
		{"defaults hide both", false, false, "admin", false, false},
		{"defaults hide both from the owner", false, false, "alice", false, false},
		{"locations on, owner", true, false, "alice", true, false},
		{"direct_url on, owner's reader", false, true, "reader", false, true},
		{"both on, admin", true, true, "admin", true, true},
		{"both on, another project", true, true, "bob", false, false},
	}
	for _, c := range cases {
		s := &Service{cfg: &config.Config{Image: config.Image{ShowMultipleLocations: c.all, ShowImageDirectURL: c.direct}}}
		var v map[string]any
		b := s.appendView(nil, tokens[c.caller], im)
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		_, locs := v["locations"]
		_, durl := v["direct_url"]
		if locs != c.locs || durl != c.hasDURL || v["stores"] != "cheap,fast" {
			t.Errorf("%s: locations %v direct_url %v stores %v, want %v %v", c.name, locs, durl, v["stores"], c.locs, c.hasDURL)
		}
		if !c.locs && !c.hasDURL && strings.Contains(string(b), "file://") {
			t.Errorf("%s: a path leaks: %s", c.name, b)
		}
	}
}

// TestAppendJSON: the one-pass writer escapes exactly like encoding/json.
func TestAppendJSON(t *testing.T) {
	for _, v := range []any{"plain", `q"uote\`, "<html>&", "tab\tnl\n\x01\x7f", "é✓\u2028", "\xff bad utf-8", "",
		[]string{"a", "b&"}, (*string)(nil), i64p(-3), map[string]any{"z": 1, "a": []any{true}},
		[]object{}, []string(nil), int64(1 << 60), false} {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSON(nil, v); string(got) != string(want) {
			t.Errorf("%#v: %s, want %s", v, got, want)
		}
	}
	// Objects keep their order (encoding/json would sort a map).
	o := object{{"k<", []string{"a"}}, {"n", nil}, {"b", object{{"z", 1}, {"a", true}}}}
	if got, want := string(appendJSON(nil, o)), `{"k\u003c":["a"],"n":null,"b":{"z":1,"a":true}}`; got != want {
		t.Errorf("object: %s, want %s", got, want)
	}
}
