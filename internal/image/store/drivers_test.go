package store_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
)

func TestFactories(t *testing.T) {
	f := store.Factories()
	var types []string
	for k := range f {
		types = append(types, k)
	}
	slices.Sort(types)
	if strings.Join(types, ",") != "file,http,s3" {
		t.Fatalf("factories = %v", types)
	}
	ctx := context.Background()
	d, err := f["file"](ctx, config.Store{ID: "fast", Type: "file",
		Options: map[string]string{"filesystem_store_datadir": filepath.Join(t.TempDir(), "fast")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.(store.Lister); !ok {
		t.Error("file driver is not a Lister")
	}
	d, err = f["http"](ctx, config.Store{ID: "web", Type: "http",
		Options: map[string]string{"http_store_base_url": "http://127.0.0.1:1/images/"}})
	if err != nil {
		t.Fatal(err)
	}
	if ro, ok := d.(store.ReadOnlyDriver); !ok || !ro.ReadOnly() {
		t.Error("http driver is not read-only")
	}
	if _, err := f["s3"](ctx, config.Store{ID: "cheap", Type: "s3", Options: map[string]string{}}); !errs.Is(err, errs.Invalid) {
		t.Errorf("s3 without options: %v, want Invalid", err)
	}
	// A failed factory returns a nil interface, not a typed nil.
	d, err = f["file"](ctx, config.Store{ID: "x", Type: "file", Options: map[string]string{}})
	if err == nil || d != nil {
		t.Errorf("file without datadir = %v, %v; want nil driver and an error", d, err)
	}
}

func TestLocations(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "fast")
	s3opts := map[string]string{"s3_store_host": "127.0.0.1:9000", "s3_store_bucket": "images",
		"s3_store_access_key": "ak", "s3_store_secret_key": "SECRET-xyz"}
	s3tls := map[string]string{"s3_store_host": "https://s3.example.com/", "s3_store_bucket": "images",
		"s3_store_access_key": "ak", "s3_store_secret_key": "SECRET-xyz"}
	cases := []struct {
		typ  string
		opts map[string]string
		key  string
		want string
	}{
		{"file", map[string]string{"filesystem_store_datadir": dir}, "abc", "file://" + dir + "/abc"},
		{"s3", s3opts, "abc", "s3://127.0.0.1:9000/images/abc"},
		{"s3", s3tls, "a b", "s3+https://s3.example.com/images/a%20b"},
		{"http", map[string]string{"http_store_base_url": "http://web.example.com/img"}, "abc",
			"http://web.example.com/img/abc"},
	}
	for _, c := range cases {
		d, err := store.Factories()[c.typ](ctx, config.Store{ID: "x", Type: c.typ, Options: c.opts})
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.(store.Locator).Location(c.key)
		if err != nil || got != c.want {
			t.Errorf("%s Location(%q) = %q, %v; want %q", c.typ, c.key, got, err, c.want)
		}
		if strings.Contains(got, "SECRET") {
			t.Errorf("%s location leaks the secret: %s", c.typ, got)
		}
		if _, err := d.(store.Locator).Location(""); !errs.Is(err, errs.Invalid) {
			t.Errorf("%s Location(\"\") = %v, want Invalid", c.typ, err)
		}
	}
}
