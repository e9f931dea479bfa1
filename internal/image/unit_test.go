package image

import (
	"net/http/httptest"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		rng, contentRange string
		off, n            int64
		ranged            bool
		kind              errs.Kind
	}{
		{"", "", 0, 24, false, -1},
		{"bytes=6-11", "", 6, 6, true, -1},
		{"bytes=-5", "", 19, 5, true, -1},
		{"bytes=20-", "", 20, 4, true, -1},
		{"bytes=20-100", "", 20, 4, true, -1},
		{"bytes=-100", "", 0, 24, true, -1},
		{"bytes=100-200", "", 0, 0, false, errs.BadRange},
		{"bytes=24-", "", 0, 0, false, errs.BadRange},
		{"bytes=0-1,3-4", "", 0, 0, false, errs.Invalid},
		{"bytes=5-2", "", 0, 0, false, errs.Invalid},
		{"items=1-2", "", 0, 0, false, errs.Invalid},
		{"", "bytes 6-11/24", 6, 6, true, -1},
		{"", "bytes x", 0, 0, false, errs.Invalid},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		if tt.rng != "" {
			r.Header.Set("Range", tt.rng)
		}
		if tt.contentRange != "" {
			r.Header.Set("Content-Range", tt.contentRange)
		}
		off, n, ranged, err := parseRange(r, 24)
		if tt.kind >= 0 {
			if errs.KindOf(err) != tt.kind {
				t.Errorf("%q %q: err %v, want kind %v", tt.rng, tt.contentRange, err, tt.kind)
			}
			continue
		}
		if err != nil || off != tt.off || n != tt.n || ranged != tt.ranged {
			t.Errorf("%q %q: %d %d %v %v, want %d %d %v", tt.rng, tt.contentRange, off, n, ranged, err, tt.off, tt.n, tt.ranged)
		}
	}
}

func TestFilterURI(t *testing.T) {
	s := &Service{cfg: &config.Config{Image: config.Image{AllowedImportHosts: []string{"127.0.0.1:8080", "images.example.com", "[::1]:9000"}}}}
	tests := map[string]bool{
		"http://127.0.0.1:8080/x":       true,
		"http://127.0.0.1/x":            false,
		"http://127.0.0.1:8081/x":       false,
		"https://images.example.com/a":  true,
		"http://images.example.com:80/": true,
		"http://images.example.com:22/": false,
		"http://[::1]:9000/img":         true,
		"ftp://images.example.com/a":    false,
		"http://u:p@127.0.0.1:8080/x":   false,
		"http://evil.example.com/":      false,
	}
	for uri, ok := range tests {
		if err := s.filterURI(uri); (err == nil) != ok {
			t.Errorf("%s: %v, want allowed=%v", uri, err, ok)
		}
	}
}

func TestParseSort(t *testing.T) {
	r := httptest.NewRequest("GET", "/?sort=name:asc,size", nil)
	specs, err := parseSort(r.URL.Query())
	if err != nil || len(specs) != 3 || specs[0] != (sortSpec{"name", true}) || specs[1] != (sortSpec{"size", false}) || specs[2].key != "id" {
		t.Errorf("sort: %v %v", specs, err)
	}
	r = httptest.NewRequest("GET", "/?sort_key=name&sort_key=created_at&sort_dir=asc", nil)
	specs, err = parseSort(r.URL.Query())
	if err != nil || len(specs) != 3 || !specs[0].asc || !specs[1].asc {
		t.Errorf("sort_key: %v %v", specs, err)
	}
	for _, q := range []string{"sort=bogus", "sort=name:up", "sort=name&sort_key=size"} {
		r = httptest.NewRequest("GET", "/?"+q, nil)
		if _, err := parseSort(r.URL.Query()); !errs.Is(err, errs.Invalid) {
			t.Errorf("%s: %v", q, err)
		}
	}
}
