package interop

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// peerEnv is the environment of the real OpenStack services.
func peerEnv(extra ...string) []string {
	return append(append(baseEnv(), "PYTHONDONTWRITEBYTECODE=1"), extra...)
}

// mustRun runs a setup command of a peer and fails the test with its
// output when it fails.
func mustRun(t *testing.T, env []string, dir string, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r := runCmd(ctx, env, dir, argv...)
	os.WriteFile(filepath.Join(dir, filepath.Base(argv[0])+".log"), []byte(r.Stdout+r.Stderr), 0o644)
	if r.Err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), r.Err, lastLines(r.Stdout+r.Stderr, 30))
	}
	t.Logf("%s took %s", strings.Join(argv[:min(len(argv), 4)], " "), r.Took.Round(time.Millisecond))
}

// glancePeer is a real glance-api (Debian) with the suite's stores.
type glancePeer struct {
	url    string
	stores string // directory with one sub-directory per file store
}

// glanceToken is what the suite's keystone-less glance pipeline reads as
// user admin, project admin, role admin (interop_glance_noauth.py).
const glanceToken = "admin:admin:admin,member,reader"

// startGlance starts glance-api with file stores fast (default), cheap,
// reliable and the read-only http store web, without Keystone.
func startGlance(t *testing.T) *glancePeer {
	t.Helper()
	requireTools(t, "glance-api", "glance-manage")
	start := time.Now()
	dir := logDir(t, "glance-api")
	port := freePort(t)
	g := &glancePeer{url: fmt.Sprintf("http://127.0.0.1:%d", port), stores: filepath.Join(dir, "stores")}
	for _, d := range []string{"stores/fast", "stores/cheap", "stores/reliable", "staging", "tasks", "work", "lock"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	paste, err := os.ReadFile("/etc/glance/glance-api-paste.ini")
	if err != nil {
		t.Fatal(err)
	}
	paste = append(paste, []byte(`
# added by the Ashlar interop suite
[pipeline:glance-api-interop]
pipeline = cors healthcheck http_proxy_to_wsgi versionnegotiation osprofiler interop-noauth rootapp

[filter:interop-noauth]
paste.filter_factory = interop_glance_noauth:filter_factory
`)...)
	pastePath := filepath.Join(dir, "glance-api-paste.ini")
	if err := os.WriteFile(pastePath, paste, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`[DEFAULT]
bind_host = 127.0.0.1
bind_port = %[2]d
workers = 1
debug = true
log_file = %[1]s/glance-api.log
use_stderr = false
enabled_backends = fast:file, cheap:file, reliable:file, web:http
enabled_import_methods = [glance-direct,web-download,copy-image]
worker_self_reference_url = http://127.0.0.1:%[2]d
show_image_direct_url = true
hashing_algorithm = sha512

[glance_store]
default_backend = fast

[fast]
store_description = Fast store (default)
filesystem_store_datadir = %[1]s/stores/fast/

[cheap]
store_description = Cheap store
filesystem_store_datadir = %[1]s/stores/cheap/

[reliable]
store_description = Reliable store
filesystem_store_datadir = %[1]s/stores/reliable/

[web]
store_description = Read-only HTTP store

[os_glance_staging_store]
filesystem_store_datadir = %[1]s/staging/

[os_glance_tasks_store]
filesystem_store_datadir = %[1]s/tasks/

[task]
work_dir = %[1]s/work

[database]
connection = sqlite:///%[1]s/glance.sqlite

[paste_deploy]
flavor = interop
config_file = %[3]s

[oslo_concurrency]
lock_path = %[1]s/lock

[oslo_policy]
enforce_new_defaults = false
enforce_scope = false

[image_import_opts]
image_import_plugins = []
`, dir, port, pastePath)
	confPath := filepath.Join(dir, "glance-api.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	peers, err := filepath.Abs("testdata/peers")
	if err != nil {
		t.Fatal(err)
	}
	env := peerEnv("PYTHONPATH=" + peers)
	mustRun(t, env, dir, "glance-manage", "--config-file", confPath, "db_sync")
	p := startProc(t, "glance-api", filepath.Join(dir, "glance-api.stdout"), env, dir, "glance-api", "--config-file", confPath)
	waitHTTP(t, p, g.url+"/healthcheck", 90*time.Second)
	t.Logf("glance-api up on %s in %s", g.url, time.Since(start).Round(time.Millisecond))
	return g
}

// keystonePeer is a real Keystone (Debian) under uwsgi.
type keystonePeer struct {
	url string // without /v3
}

const keystoneAdminPassword = "keystone-admin-pw"

// startKeystone bootstraps a fresh Keystone (SQLite, fernet tokens) and
// serves it with uwsgi.
func startKeystone(t *testing.T) *keystonePeer {
	t.Helper()
	requireTools(t, "keystone-manage", "uwsgi")
	if _, err := os.Stat("/usr/lib/uwsgi/plugins/python3_plugin.so"); err != nil {
		requireTools(t, "uwsgi-plugin-python3")
	}
	start := time.Now()
	dir := logDir(t, "keystone")
	port := freePort(t)
	k := &keystonePeer{url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	for _, d := range []string{"fernet-keys", "credential-keys", "policy.d"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	conf := fmt.Sprintf(`[DEFAULT]
debug = false
log_file = %[1]s/keystone.log
use_stderr = false
[database]
connection = sqlite:///%[1]s/keystone.db
[token]
provider = fernet
expiration = 14400
[fernet_tokens]
key_repository = %[1]s/fernet-keys
[fernet_receipts]
key_repository = %[1]s/fernet-keys
[credential]
key_repository = %[1]s/credential-keys
[cache]
enabled = false
[oslo_policy]
policy_dirs = %[1]s/policy.d
enforce_scope = false
enforce_new_defaults = false
`, dir)
	confPath := filepath.Join(dir, "keystone.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	env := peerEnv("OS_KEYSTONE_CONFIG_DIR=" + dir)
	km := []string{"keystone-manage", "--config-file", confPath}
	mustRun(t, env, dir, append(km, "db_sync")...)
	mustRun(t, env, dir, append(km, "fernet_setup", "--keystone-user", "root", "--keystone-group", "root")...)
	mustRun(t, env, dir, append(km, "credential_setup", "--keystone-user", "root", "--keystone-group", "root")...)
	mustRun(t, env, dir, append(km, "bootstrap", "--bootstrap-password", keystoneAdminPassword,
		"--bootstrap-username", "admin", "--bootstrap-project-name", "admin", "--bootstrap-role-name", "admin",
		"--bootstrap-public-url", k.url+"/v3", "--bootstrap-internal-url", k.url+"/v3",
		"--bootstrap-admin-url", k.url+"/v3", "--bootstrap-region-id", "RegionOne")...)
	// WAL: a reader in one uwsgi worker must not block a writer in the other.
	mustRun(t, env, dir, tempestPython(), "-c",
		"import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute('PRAGMA journal_mode=WAL')", filepath.Join(dir, "keystone.db"))
	p := startProc(t, "keystone", filepath.Join(dir, "uwsgi.log"), env, dir,
		"uwsgi", "--plugins", "python3", "--http-socket", fmt.Sprintf("127.0.0.1:%d", port),
		"--wsgi-file", "/usr/bin/keystone-wsgi-public", "--env", "OS_KEYSTONE_CONFIG_DIR="+dir,
		"--master", "--processes", "2", "--threads", "1", "--lazy-apps", "--buffer-size", "65535",
		"--die-on-term", "--need-app", "--add-header", "Connection: close")
	waitHTTP(t, p, k.url+"/v3", 90*time.Second)
	t.Logf("keystone up on %s in %s", k.url, time.Since(start).Round(time.Millisecond))
	return k
}

// registerEndpoint adds a catalog service of typ with public, internal
// and admin endpoints at url (region RegionOne).
func (c *ksClient) registerEndpoint(ctx context.Context, typ, name, url string) error {
	var svc struct{ Service idName }
	if _, err := c.do(ctx, "POST", "/services", map[string]any{"service": map[string]any{"type": typ, "name": name, "enabled": true}},
		&svc, http.StatusCreated); err != nil {
		return err
	}
	for _, iface := range []string{"public", "internal", "admin"} {
		if _, err := c.do(ctx, "POST", "/endpoints", map[string]any{"endpoint": map[string]any{
			"service_id": svc.Service.ID, "interface": iface, "url": url, "region_id": "RegionOne", "enabled": true}},
			nil, http.StatusCreated); err != nil {
			return err
		}
	}
	return nil
}

// startCinderAPI starts a real cinder-api (Debian) that authenticates with
// keystonemiddleware against identityURL (as service user cinder) and uses
// imageURL as its image service. Only the API runs: no scheduler, no
// volume service, no message queue.
func startCinderAPI(t *testing.T, identityURL, imageURL, servicePassword string) string {
	t.Helper()
	requireTools(t, "cinder-api", "cinder-manage")
	start := time.Now()
	dir := logDir(t, "cinder-api")
	port := freePort(t)
	for _, d := range []string{"state", "lock", "policy.d"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	conf := fmt.Sprintf(`[DEFAULT]
auth_strategy = keystone
# nothing listens there: extra-spec validation needs no RPC
transport_url = rabbit://guest:guest@127.0.0.1:%[5]d/
glance_api_servers = %[3]s
glance_num_retries = 0
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = %[2]d
osapi_volume_workers = 1
state_path = %[1]s/state
api_paste_config = /etc/cinder/api-paste.ini
log_dir = %[1]s
debug = true
[database]
connection = sqlite:///%[1]s/cinder.sqlite
[keystone_authtoken]
www_authenticate_uri = %[4]s
auth_url = %[4]s
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = cinder
password = %[6]s
region_name = RegionOne
[oslo_concurrency]
lock_path = %[1]s/lock
[oslo_policy]
policy_dirs = %[1]s/policy.d
enforce_scope = false
enforce_new_defaults = false
[coordination]
backend_url = file://%[1]s/state
`, dir, port, imageURL, identityURL, freePort(t), servicePassword)
	confPath := filepath.Join(dir, "cinder.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	env := peerEnv()
	mustRun(t, env, dir, "cinder-manage", "--config-file", confPath, "db", "sync")
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	p := startProc(t, "cinder-api", filepath.Join(dir, "cinder-api.stdout"), env, dir, "cinder-api", "--config-file", confPath)
	waitHTTP(t, p, url+"/", 90*time.Second)
	t.Logf("cinder-api up on %s in %s", url, time.Since(start).Round(time.Millisecond))
	return url
}
