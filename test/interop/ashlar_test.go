package interop

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
	"github.com/ashlar-dev/ashlar/internal/testenv"
)

// adminPassword is the embedded identity's bootstrap password
// (ASHLAR_ADMIN_PASSWORD) in every Ashlar the suite starts.
const adminPassword = "interop-admin-pw"

// Store ids of the suite's Ashlar: three writable stores and one
// read-only http store. They are deliberately not configured in
// alphabetical order, so a `stores` list that is not sorted shows.
var (
	writableStores = []string{"fast", "cheap", "reliable"}
	readOnlyStore  = "web"
)

// ashlarOpts varies the Ashlar the suite starts.
type ashlarOpts struct {
	// services is [DEFAULT] enabled_services; default all three.
	services []string
	// externalIdentity, when set, is the [identity] section for external
	// Keystone mode (auth_url, username, ...), written verbatim.
	externalIdentity map[string]string
	// glanceAPIServers is [volume] glance_api_servers; default this
	// Ashlar's own image URL.
	glanceAPIServers string
	// cheapS3 puts store cheap on a MinIO (S3) the suite starts instead of
	// a directory.
	cheapS3 bool
	// postgres runs Ashlar on a fresh PostgreSQL database (dropped at the
	// end) when ASHLAR_TEST_POSTGRES_URL is set, else on SQLite.
	postgres bool
	// scan puts the response scan's proxy in front of each service
	// (scan_test.go): the services bind internal ports, the catalog's
	// public URLs (and the suite's URLs) are the proxies', metrics are
	// served on an internal port too, and checkResponses reports every
	// response that named a server path, a store credential or an
	// internal address.
	scan bool
	// backends are the names of the file volume backends, each its own
	// [backend:<name>] with volume_backend_name <name>; default "local".
	backends []string
	// rbdConf, when set, makes the first backend an rbd backend in the
	// volumes pool of the Ceph cluster this configuration file names (the
	// others stay file backends, each reporting rbdFileCapacityGB so that
	// untyped volumes go to rbd); the binary must have the Ceph drivers.
	rbdConf string
	// rbdOptions are more lines of the rbd backend's section.
	rbdOptions string
}

// rbdFileCapacityGB is the capacity the file backends beside an rbd one
// report: less than the test cluster's pool, so the scheduler (most free
// space wins) puts volumes of no particular backend on rbd.
const rbdFileCapacityGB = 4

// ashlar is one running Ashlar.
type ashlar struct {
	// backends are its volume backends (ashlarOpts.backends).
	backends   []string
	dir        string
	stateDir   string
	configPath string
	// identityURL, imageURL and volumeURL are the services' public URLs,
	// which clients use: the bind addresses, or with ashlarOpts.scan the
	// scanning proxies'.
	identityURL string
	imageURL    string
	volumeURL   string
	web         *webServer
	// database is the PostgreSQL URL, "" for SQLite in stateDir.
	database string
	// storeTypes maps each store id to its driver type.
	storeTypes map[string]string
	proc       *proc
	// scan and secrets: with ashlarOpts.scan, what the proxies saw and
	// what they looked for.
	scan    *responseScan
	secrets []secret
}

// startAshlar writes a config, starts the binary and waits until every
// enabled service answers /healthcheck. It is stopped when the test ends.
func startAshlar(t *testing.T, name string, o ashlarOpts) *ashlar {
	t.Helper()
	bin := ashlarBinary(t)
	if len(o.services) == 0 {
		o.services = []string{"identity", "image", "volume"}
	}
	dir := logDir(t, "ashlar-"+name)
	a := &ashlar{dir: dir, stateDir: filepath.Join(dir, "state")}
	a.web = startWebServer(t, filepath.Join(dir, "web"))
	idPort, imgPort, volPort := freePort(t), freePort(t), freePort(t)
	bind := map[string]string{"identity": fmt.Sprintf("127.0.0.1:%d", idPort),
		"image": fmt.Sprintf("127.0.0.1:%d", imgPort), "volume": fmt.Sprintf("127.0.0.1:%d", volPort)}
	public := map[string]string{}
	proxies := map[string]net.Listener{}
	metricsBind := ""
	for svc, addr := range bind {
		public[svc] = "http://" + addr
	}
	if o.scan {
		for _, svc := range o.services {
			proxies[svc] = listenFree(t)
			public[svc] = "http://" + proxies[svc].Addr().String()
		}
		metricsBind = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	a.identityURL, a.imageURL, a.volumeURL = public["identity"], public["image"], public["volume"]
	glanceServers := o.glanceAPIServers
	if glanceServers == "" {
		glanceServers = "http://" + bind["image"]
	}
	// publicURL is the config line that points the catalog at the proxy.
	publicURL := func(svc string) string {
		if !o.scan {
			return ""
		}
		return "public_url = " + public[svc] + "\n"
	}

	var c strings.Builder
	fmt.Fprintf(&c, "# written by the interop suite (test/interop)\n[DEFAULT]\nstate_path = %s\n", a.stateDir)
	fmt.Fprintf(&c, "enabled_services = %s\nmetrics_bind = %s\ndebug = true\n\n", strings.Join(o.services, ", "), metricsBind)
	// Several servers run at once: none takes the dashboard's default port.
	fmt.Fprintf(&c, "[dashboard]\nbind =\n\n")
	if o.postgres {
		if os.Getenv(dbtest.EnvPostgres) != "" {
			a.database = dbtest.Connection(t, "postgres")
			fmt.Fprintf(&c, "[database]\nconnection = %s\n\n", a.database)
		} else {
			t.Logf("%s is not set: ashlar %s runs on SQLite", dbtest.EnvPostgres, name)
		}
	}
	fmt.Fprintf(&c, "[identity]\nbind = %s\n%s", bind["identity"], publicURL("identity"))
	if o.externalIdentity != nil {
		for _, k := range sortedKeys(o.externalIdentity) {
			fmt.Fprintf(&c, "%s = %s\n", k, o.externalIdentity[k])
		}
	}
	fmt.Fprintf(&c, "\n[image]\nbind = %s\n%s", bind["image"], publicURL("image"))
	a.storeTypes = map[string]string{"fast": "file", "cheap": "file", "reliable": "file", readOnlyStore: "http"}
	if o.cheapS3 {
		a.storeTypes["cheap"] = "s3"
	}
	var backends []string
	for _, s := range append(slices.Clone(writableStores), readOnlyStore) {
		backends = append(backends, s+":"+a.storeTypes[s])
	}
	fmt.Fprintf(&c, "enabled_backends = %s\n", strings.Join(backends, ", "))
	fmt.Fprintf(&c, "default_backend = %s\n", writableStores[0])
	// web-download may fetch from the suite's web server, and from the
	// unresolvable host of tempest's bad-URL test, so that the test sees the
	// upstream contract for a URL that passes filtering but cannot be
	// fetched (202, then os_glance_failed_import), not the filter's 400.
	fmt.Fprintf(&c, "allowed_import_hosts = %s, does-not.exist\n\n", a.web.hostPort)
	descr := map[string]string{"fast": "Fast store (default)", "cheap": "Cheap store", "reliable": "Reliable store"}
	var s3 *minio
	if o.cheapS3 {
		s3 = startMinIO(t)
	}
	bucket := "interop-bucket-" + hex.EncodeToString(randomBytes(t, 4))
	for _, s := range writableStores {
		if s == "cheap" && s3 != nil {
			fmt.Fprintf(&c, "[store:%s]\nstore_description = %s (S3)\ns3_store_host = %s\ns3_store_bucket = %s\n", s, descr[s], s3.url, bucket)
			fmt.Fprintf(&c, "s3_store_access_key = %s\ns3_store_secret_key = %s\ns3_store_region = us-east-1\ns3_store_create_bucket_on_put = true\n\n", s3.accessKey, s3.secretKey)
			continue
		}
		fmt.Fprintf(&c, "[store:%s]\nstore_description = %s\nfilesystem_store_datadir = %s\n\n", s, descr[s], filepath.Join(a.stateDir, "images", s))
	}
	fmt.Fprintf(&c, "[store:%s]\nstore_description = Read-only HTTP store\nhttp_store_base_url = %s/\n\n", readOnlyStore, a.web.url)
	if len(o.backends) == 0 {
		o.backends = []string{"local"}
	}
	a.backends = o.backends
	fmt.Fprintf(&c, "[volume]\nbind = %s\n%senabled_backends = %s\nglance_api_servers = %s\n\n", bind["volume"], publicURL("volume"),
		strings.Join(o.backends, ", "), glanceServers)
	for i, b := range o.backends {
		switch {
		case o.rbdConf != "" && i == 0:
			fmt.Fprintf(&c, "[backend:%s]\nvolume_driver = rbd\nvolume_backend_name = %s\nrbd_pool = volumes\nrbd_user = cinder\nrbd_ceph_conf = %s\n%s\n",
				b, b, o.rbdConf, o.rbdOptions)
		case o.rbdConf != "":
			fmt.Fprintf(&c, "[backend:%s]\nvolume_driver = file\nvolume_backend_name = %s\ntotal_capacity_gb = %d\n\n", b, b, rbdFileCapacityGB)
		default:
			fmt.Fprintf(&c, "[backend:%s]\nvolume_driver = file\nvolume_backend_name = %s\n\n", b, b)
		}
	}
	a.configPath = filepath.Join(dir, "ashlar.conf")
	if err := os.WriteFile(a.configPath, []byte(c.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	if o.scan {
		a.secrets = a.scanSecrets(bind, metricsBind, s3, bucket)
		a.scan = newResponseScan(a.secrets, []allowance{allowFileStoreDirs(a.fileStoreDirs())})
		for svc, l := range proxies {
			startScanProxy(t, svc, "http://"+bind[svc], l, filepath.Join(dir, "proxy.log"), a.scan)
		}
	}

	env := append(baseEnv(), "ASHLAR_ADMIN_PASSWORD="+adminPassword)
	start := time.Now()
	if a.database != "" {
		// serve refuses a PostgreSQL schema that is behind; migrate first.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		r := runCmd(ctx, env, dir, bin, "db", "migrate", "--config", a.configPath)
		cancel()
		if r.Err != nil {
			t.Fatalf("ashlar db migrate: %v\n%s%s", r.Err, r.Stdout, r.Stderr)
		}
	}
	a.proc = startProc(t, "ashlar-"+name, filepath.Join(dir, "ashlar.log"), env, dir,
		bin, "serve", "--config", a.configPath)
	ports := map[string]string{"identity": a.identityURL, "image": a.imageURL, "volume": a.volumeURL}
	for _, s := range o.services {
		waitHTTP(t, a.proc, ports[s]+"/healthcheck", 60*time.Second)
	}
	// A config the binary ignores in part would test something else.
	for _, line := range strings.Split(a.proc.tail(1<<16), "\n") {
		if strings.HasPrefix(line, "warning:") {
			t.Errorf("ashlar %s: config %s: %s", name, a.configPath, line)
		}
	}
	db := "SQLite"
	if a.database != "" {
		db = "PostgreSQL"
	}
	t.Logf("ashlar %s up on %s in %s (identity %s, image %s, volume %s, config %s)", name, db,
		time.Since(start).Round(time.Millisecond), a.identityURL, a.imageURL, a.volumeURL, a.configPath)
	return a
}

// authURL is the embedded identity's v3 URL.
func (a *ashlar) authURL() string { return a.identityURL + "/v3" }

// fileStoreDirs maps each file store id to its directory.
func (a *ashlar) fileStoreDirs() map[string]string {
	dirs := map[string]string{}
	for id, typ := range a.storeTypes {
		if typ == "file" {
			dirs[id] = filepath.Join(a.stateDir, "images", id)
		}
	}
	return dirs
}

// scanSecrets lists what no response of this Ashlar may contain. Not in
// it: the suite's web server, which is the read-only http store's base URL
// but also the address the clients themselves give web-download (and
// tempest's image source), so it is not private to the server.
func (a *ashlar) scanSecrets(bind map[string]string, metricsBind string, s3 *minio, bucket string) []secret {
	secrets := []secret{
		{"state path", a.stateDir},
		{"config file", a.configPath},
		{"staging directory", filepath.Join(a.stateDir, "staging")},
		{"volumes directory", filepath.Join(a.stateDir, "volumes", "local")},
		{"metrics address", metricsBind},
		{"bootstrap admin password", adminPassword},
	}
	for _, id := range sortedKeys(a.fileStoreDirs()) {
		secrets = append(secrets, secret{"store " + id + " directory", a.fileStoreDirs()[id]})
	}
	for _, svc := range sortedKeys(bind) {
		secrets = append(secrets, secret{svc + " bind address", bind[svc]})
	}
	if s3 != nil {
		secrets = append(secrets, secret{"S3 access key", s3.accessKey}, secret{"S3 secret key", s3.secretKey},
			secret{"S3 bucket", bucket}, secret{"S3 endpoint (MinIO)", strings.TrimPrefix(s3.url, "http://")})
	}
	if a.database != "" {
		if u, err := url.Parse(a.database); err == nil {
			secrets = append(secrets, secret{"database address", u.Host}, secret{"database name", strings.TrimPrefix(u.Path, "/")})
		}
	}
	return secrets
}

// listenFree listens on a free port of the suite's range.
func listenFree(t *testing.T) net.Listener {
	t.Helper()
	var l net.Listener
	var err error
	for range 20 {
		if l, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", freePort(t))); err == nil {
			return l
		}
	}
	t.Fatal(err)
	return nil
}

// webServer serves files for the read-only http store and web-download.
type webServer struct {
	dir      string
	url      string
	hostPort string
}

// startWebServer serves dir on a port of the suite's range until the test
// ends. It holds a 1 MiB random file "random.img".
func startWebServer(t *testing.T, dir string) *webServer {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "random.img"), randomBytes(t, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	l := listenFree(t)
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Logf("web server: %v", err)
		}
	}()
	t.Cleanup(func() { srv.Close() })
	return &webServer{dir: dir, url: "http://" + l.Addr().String(), hostPort: l.Addr().String()}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// minio is a MinIO S3 server the suite started.
type minio struct {
	url                  string
	accessKey, secretKey string
}

// startMinIO starts the pinned MinIO (built by scripts/setup.sh) on ports
// of the suite's range. Without the binary the test is skipped, or fails
// under CI=true.
func startMinIO(t *testing.T) *minio {
	t.Helper()
	bin := testenv.MinIOPath()
	if _, err := os.Stat(bin); err != nil {
		testenv.SkipOrFatal(t, "MinIO not found at %s (run scripts/setup.sh)", bin)
	}
	dir := logDir(t, "minio")
	port, console := freePort(t), freePort(t)
	// Credentials no response could contain by chance (the response
	// scan looks for them).
	m := &minio{url: fmt.Sprintf("http://127.0.0.1:%d", port), accessKey: "interop-ak-" + hex.EncodeToString(randomBytes(t, 4)),
		secretKey: "interop-sk-" + hex.EncodeToString(randomBytes(t, 8))}
	env := append(baseEnv(), "MINIO_ROOT_USER="+m.accessKey, "MINIO_ROOT_PASSWORD="+m.secretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_REGION=us-east-1")
	p := startProc(t, "minio", filepath.Join(dir, "minio.log"), env, dir, bin, "server", filepath.Join(dir, "data"),
		"--address", fmt.Sprintf("127.0.0.1:%d", port), "--console-address", fmt.Sprintf("127.0.0.1:%d", console), "--quiet")
	waitHTTP(t, p, m.url+"/minio/health/live", 60*time.Second)
	return m
}
