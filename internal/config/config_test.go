package config

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEmbeddedDefaults(t *testing.T) {
	c, err := Load("", "/srv/ashlar")
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.Connection != "sqlite:////srv/ashlar/ashlar.db" {
		t.Errorf("connection = %q", c.Database.Connection)
	}
	var ids []string
	for _, s := range c.Stores {
		ids = append(ids, s.ID+":"+s.Type)
		if s.Description == "" {
			t.Errorf("store %s has no description", s.ID)
		}
		if want := filepath.Join("/srv/ashlar/images", s.ID); s.StateDir != want {
			t.Errorf("store %s state dir = %q, want %q", s.ID, s.StateDir, want)
		}
	}
	if got := strings.Join(ids, ","); got != "fast:file,cheap:file,reliable:file" {
		t.Errorf("stores = %s", got)
	}
	if c.Image.DefaultBackend != "fast" {
		t.Errorf("default backend = %q", c.Image.DefaultBackend)
	}
	if len(c.Backends) != 1 || c.Backends[0].VolumeDriver != "file" || c.Backends[0].Options["volumes_dir"] != "/srv/ashlar/volumes/local" {
		t.Errorf("backends = %+v", c.Backends)
	}
	for _, svc := range []string{ServiceIdentity, ServiceImage, ServiceVolume} {
		if !c.Enabled(svc) {
			t.Errorf("%s not enabled by default", svc)
		}
	}
	if c.Identity.Bind != "127.0.0.1:5000" || c.Image.Bind != "127.0.0.1:9292" || c.Volume.Bind != "127.0.0.1:8776" {
		t.Errorf("binds = %s %s %s", c.Identity.Bind, c.Image.Bind, c.Volume.Bind)
	}
	if c.Identity.TokenExpiration != time.Hour {
		t.Errorf("token expiration = %v", c.Identity.TokenExpiration)
	}
	if c.Image.ShowMultipleLocations || c.Image.ShowImageDirectURL {
		t.Errorf("image locations shown by default: %v %v", c.Image.ShowMultipleLocations, c.Image.ShowImageDirectURL)
	}
}

func TestDesignExample(t *testing.T) {
	c, err := Parse(`
[DEFAULT]
state_path = /var/lib/ashlar

[database]
connection = postgresql://postgres@127.0.0.1:5432/ashlar

[image]
enabled_backends = fast:file, cheap:s3, reliable:file, web:http
default_backend = fast
show_image_direct_url = yes

[store:fast]
store_description = Fast store with short transfer time
filesystem_store_datadir = /data/fast
filesystem_thin_provisioning = yes

[store:web]
store_description = Read-only images served over HTTP

[store:cheap]
store_description = Inexpensive store
s3_store_host = http://127.0.0.1:8333
s3_store_bucket = cheap
s3_store_access_key = ak
s3_store_secret_key = sk

[volume]
enabled_backends = local
glance_api_servers = http://127.0.0.1:9292/

[backend:local]
volume_driver = file
volume_backend_name = local
volumes_dir = /data/volumes
`, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %v", c.Warnings)
	}
	want := []string{"fast:file", "cheap:s3", "reliable:file", "web:http"}
	for i, s := range c.Stores {
		if s.ID+":"+s.Type != want[i] {
			t.Errorf("store %d = %s:%s, want %s", i, s.ID, s.Type, want[i])
		}
	}
	// Driver options are left as written, for the drivers to read.
	if c.Stores[1].Options["s3_store_bucket"] != "cheap" || len(c.Stores[2].Options) != 0 || c.Stores[2].StateDir != "/var/lib/ashlar/images/reliable" {
		t.Errorf("store options: %+v / %+v", c.Stores[1], c.Stores[2])
	}
	if c.Stores[0].Options["filesystem_thin_provisioning"] != "yes" || c.Stores[0].Description != "Fast store with short transfer time" {
		t.Errorf("store fast: %+v", c.Stores[0])
	}
	if c.Volume.GlanceAPIServers[0] != "http://127.0.0.1:9292" {
		t.Errorf("glance_api_servers = %v", c.Volume.GlanceAPIServers)
	}
	if !c.Image.ShowImageDirectURL || c.Image.ShowMultipleLocations {
		t.Errorf("show_image_direct_url = %v, show_multiple_locations = %v", c.Image.ShowImageDirectURL, c.Image.ShowMultipleLocations)
	}
	engine, dsn, err := ParseConnection(c.Database.Connection)
	if engine != EnginePostgres || dsn != "postgres://postgres@127.0.0.1:5432/ashlar" || err != nil {
		t.Errorf("ParseConnection = %s %s %v", engine, dsn, err)
	}
}

// Every problem is reported at once, each with its section and key,
// including those a Check finds. (The store drivers' checks are tested
// with them, in internal/image/store/drivers.)
func TestInvalidReportsEveryProblem(t *testing.T) {
	check := func(c *Config) (problems, warnings []Problem) {
		for _, s := range c.Stores {
			problems = append(problems, Problem{"store:" + s.ID, "k", "checked"})
		}
		return problems, []Problem{{"store:fast", "frobnicate", "unknown"}}
	}
	c, err := Parse(`
[DEFAULT]
debug = maybe
[identity]
token_expiration = soon
[image]
enabled_backends = fast:file, bad:ftp, os_glance_x:file
default_backend = nowhere
show_multiple_locations = often
[store:fast]
frobnicate = 1
filesystem_thin_provisioning = sometimes
[backend:local]
volume_driver = lvm
`, "", check)
	ve, ok := err.(*ValidationError)
	if !ok {
		t.Fatalf("err = %v, want *ValidationError", err)
	}
	for _, want := range []string{
		"[DEFAULT] debug:", "[identity] token_expiration:", "os_glance_ prefix is reserved",
		"[image] default_backend:", "[image] show_multiple_locations:", "[backend:local] volume_driver:", "[store:fast] k: checked", "[store:bad] k: checked",
	} {
		if !strings.Contains(ve.Error(), want) {
			t.Errorf("error does not mention %q:\n%s", want, ve.Error())
		}
	}
	if len(c.Warnings) != 1 || c.Warnings[0].Key != "frobnicate" {
		t.Errorf("warnings = %v, want the check's", c.Warnings)
	}
}

func TestUnknownKeysWarn(t *testing.T) {
	c, err := Parse("[image]\nflux = 1\n[nonsense]\na = b\n", "")
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, w := range c.Warnings {
		got += w.String() + "\n"
	}
	if !strings.Contains(got, "[image] flux: unknown option") || !strings.Contains(got, "[nonsense]: unknown section") {
		t.Errorf("warnings = %s", got)
	}
}

func TestParseConnection(t *testing.T) {
	tests := []struct{ in, engine, dsn string }{
		{"sqlite:///./data/ashlar.db", EngineSQLite, "./data/ashlar.db"},
		{"sqlite:////var/lib/a.db", EngineSQLite, "/var/lib/a.db"},
		{"postgresql+psycopg2://u:p@h:5432/d", EnginePostgres, "postgres://u:p@h:5432/d"},
		{"mysql://x", "", ""},
		{"nonsense", "", ""},
	}
	for _, tt := range tests {
		e, d, err := ParseConnection(tt.in)
		if e != tt.engine || d != tt.dsn || (tt.engine == "") != (err != nil) {
			t.Errorf("ParseConnection(%q) = %q, %q, %v", tt.in, e, d, err)
		}
	}
}

func TestPrintMasksSecrets(t *testing.T) {
	c, err := Parse("[database]\nconnection = postgresql://u:hunter2@h/d\n[image]\nenabled_backends = s:s3\ndefault_backend = s\n[store:s]\ns3_store_host = http://h:1\ns3_store_bucket = b\ns3_store_access_key = AK\ns3_store_secret_key = SK\n", "")
	if err != nil {
		t.Fatal(err)
	}
	printed := func() string {
		var b strings.Builder
		Print(&b, c)
		return b.String()
	}
	// No driver has said which options are secret: all are masked.
	out := printed()
	for _, secret := range []string{"hunter2", "= SK", "= AK", "= b\n"} {
		if strings.Contains(out, secret) {
			t.Errorf("printed config contains %q:\n%s", secret, out)
		}
	}
	// Once a driver has, only those are.
	o := NewOptions(c.Stores[0])
	o.String("s3_store_bucket", "")
	o.Secret("s3_store_secret_key")
	o.Resolve(&c.Stores[0])
	out = printed()
	if !strings.Contains(out, "s3_store_bucket = b\n") || !strings.Contains(out, "s3_store_secret_key = ***\n") || strings.Contains(out, "AK") {
		t.Errorf("printed config after the driver read its options:\n%s", out)
	}
}

func TestOptions(t *testing.T) {
	o := NewOptions(Store{ID: "x", Options: map[string]string{"b": " on ", "n": "7", "p": "rel", "u": "http://h/x/", "bad": "2", "z": "1"}})
	if !o.Bool("b", false) || o.Int("n", 0, 1, 10) != 7 || o.Path("p", "") != absPath("rel") || o.HTTPURL("u", "") != "http://h/x" {
		t.Error("getters did not read the values")
	}
	if o.String("missing", "def") != "def" || o.Int("bad", 5, 3, 10) != 5 {
		t.Error("getters did not fall back to the defaults")
	}
	if got := fmt.Sprint(o.Problems()); got != "[[store:x] bad: 2 is below the minimum 3]" {
		t.Errorf("problems = %s", got)
	}
	if got := fmt.Sprint(o.Unknown()); got != "[[store:x] z: unknown option, ignored]" {
		t.Errorf("unknown = %s", got)
	}
	if got := strings.Join(o.Keys(), ","); got != "b,bad,missing,n,p,u" {
		t.Errorf("keys = %s", got)
	}
	var s Store
	o.Resolve(&s)
	want := map[string]string{"b": "true", "n": "7", "p": absPath("rel"), "u": "http://h/x", "missing": "def"}
	if !maps.Equal(s.Options, want) || s.Secret == nil {
		t.Errorf("resolved = %v (secret %v), want %v", s.Options, s.Secret, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope.conf"), ""); err == nil {
		t.Error("missing file accepted")
	}
	p := filepath.Join(t.TempDir(), "a.conf")
	os.WriteFile(p, []byte("[DEFAULT]\nstate_path = /x\n"), 0o600)
	if c, err := Load(p, ""); err != nil || c.Default.StatePath != "/x" {
		t.Errorf("Load = %v, %v", c, err)
	}
}

// The connection limits of [DEFAULT]: defaults, explicit values, the
// exempt list (addresses and networks; empty exempts nothing) and refusals.
func TestConnectionLimits(t *testing.T) {
	def, err := Parse("", "")
	if err != nil {
		t.Fatal(err)
	}
	d := def.Default
	if d.ClientSocketTimeout != 900*time.Second || d.ClientHeaderTimeout != 30*time.Second ||
		d.ClientBodyTimeout != 60*time.Second || d.MaxConnectionsPerClient != 256 ||
		fmt.Sprint(d.ConnectionLimitExempt) != "[127.0.0.0/8 ::1/128]" {
		t.Errorf("defaults = %+v", d)
	}

	c, err := Parse(`[DEFAULT]
client_socket_timeout = 0
client_header_timeout = 5
client_body_timeout = 7
max_connections_per_client = 0
connection_limit_exempt = 10.1.2.3, 192.168.7.9/16, 2001:db8::/32
`, "")
	if err != nil {
		t.Fatal(err)
	}
	d = c.Default
	if d.ClientSocketTimeout != 0 || d.ClientHeaderTimeout != 5*time.Second || d.ClientBodyTimeout != 7*time.Second ||
		d.MaxConnectionsPerClient != 0 || fmt.Sprint(d.ConnectionLimitExempt) != "[10.1.2.3/32 192.168.0.0/16 2001:db8::/32]" {
		t.Errorf("parsed = %+v", d)
	}
	var b strings.Builder
	Print(&b, c)
	if !strings.Contains(b.String(), "client_body_timeout = 7\n") || !strings.Contains(b.String(), "connection_limit_exempt = 10.1.2.3/32, 192.168.0.0/16, 2001:db8::/32\n") {
		t.Errorf("printed:\n%s", b.String())
	}

	if c, err := Parse("[DEFAULT]\nconnection_limit_exempt =\n", ""); err != nil || len(c.Default.ConnectionLimitExempt) != 0 {
		t.Errorf("empty exempt list = %v, %v", c.Default.ConnectionLimitExempt, err)
	}

	_, err = Parse(`[DEFAULT]
client_socket_timeout = -1
client_header_timeout = 0
client_body_timeout = soon
max_connections_per_client = -5
connection_limit_exempt = 127.0.0.1, localhost
`, "")
	for _, want := range []string{"client_socket_timeout: -1 is below", "client_header_timeout: 0 is below",
		`client_body_timeout: "soon" is not an integer`, "max_connections_per_client: -5 is below",
		`connection_limit_exempt: "localhost" is not an IP address`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}

func TestBackupSection(t *testing.T) {
	tests := []struct {
		name, ini   string
		driver      string
		opts        map[string]string
		problem     string
		warningKey  string
		compression string
	}{
		{name: "defaults", ini: "", driver: "posix", compression: "zstd",
			opts: map[string]string{"backup_posix_path": "/srv/ashlar/backups"}},
		{name: "cinder s3 class path", ini: "[backup]\nbackup_driver = cinder.backup.drivers.s3.S3BackupDriver\n" +
			"backup_s3_endpoint_url = http://h:9000\nbackup_s3_store_bucket = b\nbackup_compression_algorithm = none\n",
			driver: "s3", compression: "none", opts: map[string]string{"backup_s3_endpoint_url": "http://h:9000", "backup_s3_store_bucket": "b"}},
		{name: "unknown driver", ini: "[backup]\nbackup_driver = swift\n", problem: "backup_driver"},
		{name: "bad compression", ini: "[backup]\nbackup_compression_algorithm = bz2\n", problem: "backup_compression_algorithm"},
		{name: "another driver's key", ini: "[backup]\nbackup_s3_store_bucket = b\n", driver: "posix", compression: "zstd",
			opts: map[string]string{"backup_posix_path": "/srv/ashlar/backups"}, warningKey: "backup_s3_store_bucket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(tc.ini, "/srv/ashlar")
			if tc.problem != "" {
				var ve *ValidationError
				if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("Parse: %v, want a problem with %s", err, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b := c.Backup
			if b.Driver != tc.driver || b.Compression != tc.compression || !maps.Equal(b.Options, tc.opts) || b.Container != "volumebackups" || b.Workers != 4 {
				t.Errorf("backup = %+v", b)
			}
			var warned bool
			for _, w := range c.Warnings {
				warned = warned || w.Section == "backup" && w.Key == tc.warningKey
			}
			if tc.warningKey != "" && !warned {
				t.Errorf("no warning for %s: %v", tc.warningKey, c.Warnings)
			}
		})
	}
}
