package drivers_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/image/store/drivers"
)

func TestTypes(t *testing.T) {
	want := map[string][]string{
		"file": {"filesystem_store_datadir", "filesystem_thin_provisioning"},
		"s3": {"s3_store_access_key", "s3_store_bucket", "s3_store_create_bucket_on_put", "s3_store_host",
			"s3_store_large_object_chunk_size", "s3_store_region", "s3_store_secret_key", "s3_store_thread_pools"},
		"http": {"http_store_base_url"},
		"rbd": {"rados_connect_timeout", "rbd_store_ceph_conf", "rbd_store_chunk_size", "rbd_store_pool",
			"rbd_store_user", "rbd_thin_provisioning"},
	}
	types := drivers.Types()
	if len(types) != len(want) {
		t.Fatalf("types = %v", types)
	}
	for name, keys := range want {
		if got := types[name].Keys(); !slices.Equal(got, keys) {
			t.Errorf("%s keys = %v, want %v", name, got, keys)
		}
	}
}

// open opens a driver of typ through the registry.
func open(t *testing.T, typ string, opts map[string]string) store.Driver {
	t.Helper()
	d, err := drivers.Factories()[typ](context.Background(), config.Store{ID: "x", Type: typ, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestFactories(t *testing.T) {
	ctx := context.Background()
	if _, ok := open(t, "file", map[string]string{"filesystem_store_datadir": t.TempDir()}).(store.Lister); !ok {
		t.Error("file driver is not a Lister")
	}
	// A type the registry calls read-only has a driver that says so.
	for name, typ := range drivers.Types() {
		if name == "rbd" {
			continue // needs a cluster (and the build tag): internal/image/store/rbd
		}
		opts := map[string]string{"filesystem_store_datadir": t.TempDir(), "http_store_base_url": "http://127.0.0.1:1/images/",
			"s3_store_host": "127.0.0.1:1", "s3_store_bucket": "b", "s3_store_access_key": "a", "s3_store_secret_key": "s"}
		for k := range opts {
			if !slices.Contains(typ.Keys(), k) {
				delete(opts, k)
			}
		}
		ro, ok := open(t, name, opts).(store.ReadOnlyDriver)
		if typ.ReadOnly != (ok && ro.ReadOnly()) {
			t.Errorf("%s: registry ReadOnly = %v, driver read-only = %v", name, typ.ReadOnly, ok && ro.ReadOnly())
		}
	}
	_, err := drivers.Factories()["s3"](ctx, config.Store{ID: "cheap", Type: "s3", Options: map[string]string{}})
	if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "[store:cheap] s3_store_host: required") {
		t.Errorf("s3 without options: %v, want Invalid naming the section and key", err)
	}
	// A failed factory returns a nil interface, not a typed nil.
	d, err := drivers.Factories()["file"](ctx, config.Store{ID: "x", Type: "file", Options: map[string]string{}})
	if err == nil || d != nil {
		t.Errorf("file without datadir = %v, %v; want nil driver and an error", d, err)
	}
	d, err = drivers.Factories()["file"](ctx, config.Store{ID: "x", Type: "file",
		Options: map[string]string{"filesystem_store_datadir": "/dev/null/x"}})
	if err == nil || d != nil {
		t.Errorf("file in an impossible directory = %v, %v; want nil driver and an error", d, err)
	}
}

// TestLocations: the Store asks the driver for locations, after checking
// the key itself.
func TestLocations(t *testing.T) {
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
		sc := config.Store{ID: "x", Type: c.typ, Options: c.opts}
		st := store.NewStore(sc, open(t, c.typ, c.opts), false, nil)
		got, err := st.Location(c.key)
		if err != nil || got != c.want {
			t.Errorf("%s Location(%q) = %q, %v; want %q", c.typ, c.key, got, err, c.want)
		}
		if strings.Contains(got, "SECRET") {
			t.Errorf("%s location leaks the secret: %s", c.typ, got)
		}
		for _, bad := range []string{"", "a\x00b", "a\r\nb", strings.Repeat("k", store.MaxKeyLen+1)} {
			if _, err := st.Location(bad); !errs.Is(err, errs.Invalid) {
				t.Errorf("%s Location(%q) = %v, want Invalid", c.typ, bad, err)
			}
		}
	}
	st := store.NewStore(config.Store{ID: "x"}, struct{ store.Driver }{}, false, nil)
	if _, err := st.Location("abc"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Location on a driver without locations = %v, want ErrUnsupported", err)
	}
}

// TestProperties: GET /v2/info/stores/detail shows what each driver
// describes, never the credentials, and {} for drivers that describe
// nothing.
func TestProperties(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		typ  string
		opts map[string]string
		want map[string]any
	}{
		{"file", map[string]string{"filesystem_store_datadir": dir, "filesystem_thin_provisioning": "true"},
			map[string]any{"data_dir": dir, "chunk_size": store.ChunkSize, "thin_provisioning": true}},
		{"s3", map[string]string{"s3_store_host": "127.0.0.1:9000", "s3_store_bucket": "images",
			"s3_store_access_key": "ak", "s3_store_secret_key": "sk"},
			map[string]any{"s3_store_bucket": "images", "s3_store_host": "127.0.0.1:9000"}},
		{"http", map[string]string{"http_store_base_url": "http://web.example.com/img"}, map[string]any{}},
	}
	for _, c := range cases {
		st := store.NewStore(config.Store{ID: "x", Type: c.typ, Options: c.opts}, open(t, c.typ, c.opts), false, nil)
		if len(st.Properties) != len(c.want) {
			t.Errorf("%s properties = %v, want %v", c.typ, st.Properties, c.want)
		}
		for k, v := range c.want {
			if st.Properties[k] != v {
				t.Errorf("%s properties = %v, want %v", c.typ, st.Properties, c.want)
			}
		}
	}
}

// TestCheckReportsEveryProblem: a file with mistakes in several stores gets
// every problem reported at once, each with its section and key; keys no
// driver knows are warnings.
func TestCheckReportsEveryProblem(t *testing.T) {
	_, err := config.Parse(`
[identity]
token_expiration = soon
[image]
enabled_backends = fast:file, cheap:s3, web:http, tape:ftp
default_backend = web
[store:fast]
filesystem_thin_provisioning = sometimes
frobnicate = 1
[store:cheap]
s3_store_host = ftp://s3.example.com
s3_store_bucket = images
s3_store_large_object_chunk_size = 4
s3_store_thread_pools = many
s3_store_create_bucket_on_put = maybe
[store:web]
http_store_base_url = web.example.com/images
`, t.TempDir(), drivers.Check)
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want *config.ValidationError", err)
	}
	want := []string{
		`[identity] token_expiration: "soon" is not an integer`,
		`[store:fast] filesystem_thin_provisioning: "sometimes" is not a boolean (true/false)`,
		`[store:cheap] s3_store_access_key: required for an s3 store`,
		`[store:cheap] s3_store_secret_key: required for an s3 store`,
		`[store:cheap] s3_store_create_bucket_on_put: "maybe" is not a boolean (true/false)`,
		`[store:cheap] s3_store_large_object_chunk_size: 4 is below the minimum 5`,
		`[store:cheap] s3_store_thread_pools: "many" is not an integer`,
		`[store:cheap] s3_store_host: "ftp://s3.example.com" is not an http(s) URL or host[:port]`,
		`[image] default_backend: store "web" is read-only and cannot be the default`,
		`[store:web] http_store_base_url: "web.example.com/images" is not an http(s) URL`,
		`[image] enabled_backends: store "tape" has unknown type "ftp" (want file, http, rbd, s3)`,
	}
	var got []string
	for _, p := range ve.Problems {
		got = append(got, p.String())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestCheckResolves(t *testing.T) {
	state := t.TempDir()
	c, err := config.Parse(`
[image]
enabled_backends = fast:file, cheap:s3
default_backend = fast
[store:fast]
filesystem_thin_provisioning = yes
frobnicate = 1
[store:cheap]
s3_store_host = http://h:1/
s3_store_bucket = b
s3_store_access_key = AK
s3_store_secret_key = SK
`, state, drivers.Check)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || c.Warnings[0].String() != "[store:fast] frobnicate: unknown option, ignored" {
		t.Errorf("warnings = %v", c.Warnings)
	}
	fast, _ := c.Store("fast")
	if fast.Options["filesystem_store_datadir"] != filepath.Join(state, "images", "fast") || fast.Options["filesystem_thin_provisioning"] != "true" {
		t.Errorf("fast options = %v, want the default datadir and a canonical boolean", fast.Options)
	}
	var b strings.Builder
	config.Print(&b, c)
	for _, secret := range []string{"= SK", "= AK"} {
		if strings.Contains(b.String(), secret) {
			t.Errorf("printed config contains %q:\n%s", secret, b.String())
		}
	}
	if !strings.Contains(b.String(), "s3_store_bucket = b\n") || !strings.Contains(b.String(), "s3_store_secret_key = ***\n") {
		t.Errorf("printed config:\n%s", b.String())
	}
}

// TestDocumented: the docs list every key of every store type.
func TestDocumented(t *testing.T) {
	for _, doc := range []string{"../../../../README.md", "../../../../docs/imagestore.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for name, typ := range drivers.Types() {
			for _, k := range typ.Keys() {
				if !strings.Contains(string(b), "`"+k+"`") {
					t.Errorf("%s does not document the %s store option %s", doc, name, k)
				}
			}
		}
	}
}

// TestCheckStaging: the staging store's type and options are checked like
// any store's, under their own section, and decide whether staging is
// shared by default.
func TestCheckStaging(t *testing.T) {
	state := t.TempDir()
	cases := []struct {
		name, conf string
		problems   []string
		typ        string
		shared     bool
		datadir    string
	}{
		{name: "default", typ: "file", datadir: filepath.Join(state, "staging")},
		{name: "shared mount", conf: "[image]\nstaging_dir = /mnt/nfs/staging\nstaging_shared = true\n",
			typ: "file", shared: true, datadir: "/mnt/nfs/staging"},
		{name: "datadir option", conf: "[store:os_glance_staging_store]\nfilesystem_store_datadir = /srv/stage\n",
			typ: "file", datadir: "/srv/stage"},
		{name: "s3", conf: "[image]\nstaging_store = s3\n[store:os_glance_staging_store]\ns3_store_host = h:1\n" +
			"s3_store_bucket = staging\ns3_store_access_key = a\ns3_store_secret_key = s\n", typ: "s3", shared: true},
		{name: "s3 said local", conf: "[image]\nstaging_store = s3\nstaging_shared = no\n[store:os_glance_staging_store]\n" +
			"s3_store_host = h:1\ns3_store_bucket = staging\ns3_store_access_key = a\ns3_store_secret_key = s\n", typ: "s3"},
		{name: "s3 incomplete", conf: "[image]\nstaging_store = s3\n[store:os_glance_staging_store]\ns3_store_host = h:1\n",
			problems: []string{
				"[store:os_glance_staging_store] s3_store_access_key: required for an s3 store",
				"[store:os_glance_staging_store] s3_store_bucket: required for an s3 store",
				"[store:os_glance_staging_store] s3_store_secret_key: required for an s3 store"}},
		{name: "read-only", conf: "[image]\nstaging_store = http\n[store:os_glance_staging_store]\nhttp_store_base_url = http://w/\n",
			problems: []string{`[image] staging_store: store type "http" is read-only and cannot hold staged data`}},
		{name: "unknown", conf: "[image]\nstaging_store = tape\n",
			problems: []string{`[image] staging_store: unknown store type "tape" (want file, http, rbd, s3)`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := config.Parse(c.conf, state, drivers.Check)
			var got []string
			var ve *config.ValidationError
			if errors.As(err, &ve) {
				for _, p := range ve.Problems {
					got = append(got, p.String())
				}
			} else if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if !slices.Equal(got, c.problems) {
				t.Fatalf("problems %q, want %q", got, c.problems)
			}
			if len(c.problems) > 0 {
				return
			}
			if len(cfg.Warnings) > 0 {
				t.Errorf("warnings: %v", cfg.Warnings)
			}
			if cfg.Image.Staging.Type != c.typ || cfg.Image.StagingShared != c.shared ||
				cfg.Image.Staging.Options["filesystem_store_datadir"] != c.datadir {
				t.Errorf("staging %+v shared %v, want type %s shared %v datadir %q", cfg.Image.Staging, cfg.Image.StagingShared,
					c.typ, c.shared, c.datadir)
			}
		})
	}
}
