package interop

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/image/store/drivers"
	"github.com/ashlar-dev/ashlar/internal/image/store/s3"
)

// clusterLease is the task lease of the cluster's nodes: short, so that a
// killed node's work is taken over within seconds.
const clusterLease = 5 * time.Second

// cluster is n `ashlar serve` nodes on 127.0.0.1 behind HAProxy (round
// robin, health-checked on /healthcheck), whose address is every
// service's public_url: one PostgreSQL database, every image store and the
// staging store in one MinIO (a bucket each), the volumes in one shared
// directory, each node with its own state directory.
type cluster struct {
	// ashlar is the cluster as clients see it (the load balancer's URLs),
	// for runCLI and runTempest.
	*ashlar
	g          *nodeGroup
	lb         *proc
	s3         *minio
	buckets    map[string]string // store id (os_glance_staging_store too) -> bucket
	volumesDir string
}

// clusterStores are the cluster's image stores, all on S3.
var clusterStores = []string{"fast", "cheap", "reliable"}

// startCluster starts MinIO, n nodes and HAProxy in front of them.
func startCluster(t *testing.T, name string, n int) *cluster {
	t.Helper()
	requireTools(t, "haproxy")
	start := time.Now()
	dir := logDir(t, "cluster-"+name)
	c := &cluster{s3: startMinIO(t), buckets: map[string]string{}, volumesDir: filepath.Join(dir, "shared", "volumes")}
	suffix := hex.EncodeToString(randomBytes(t, 3))
	for _, id := range append(clusterStores, store.StagingID) {
		c.buckets[id] = strings.ReplaceAll("cluster-"+id+"-"+suffix, "_", "-")
	}
	web := startWebServer(t, filepath.Join(dir, "web"))
	lb := map[string]string{}
	for _, svc := range []string{"identity", "image", "volume"} {
		lb[svc] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	c.ashlar = &ashlar{backends: []string{"local"}, dir: dir, identityURL: "http://" + lb["identity"], imageURL: "http://" + lb["image"],
		volumeURL: "http://" + lb["volume"], web: web,
		storeTypes: map[string]string{"fast": "s3", "cheap": "s3", "reliable": "s3", readOnlyStore: "http"}}
	c.g = newNodeGroup(t, dir, n, func(g *nodeGroup, nd *node) string {
		return c.nodeConfig(g, nd, filepath.Join(dir, nd.name+"-state"))
	})
	c.ashlar.database = c.g.database
	c.ashlar.stateDir = filepath.Join(dir, c.g.nodes[0].name+"-state")
	backends := map[string][]string{}
	for _, nd := range c.g.nodes {
		backends["identity"] = append(backends["identity"], nd.idBind)
		backends["image"] = append(backends["image"], nd.imgBind)
		backends["volume"] = append(backends["volume"], nd.volBind)
	}
	c.lb = startHAProxy(t, dir, lb, backends)
	for _, u := range []string{c.identityURL, c.imageURL, c.volumeURL} {
		waitHTTP(t, c.lb, u+"/healthcheck", 30*time.Second)
	}
	t.Logf("cluster %s: %d nodes behind HAProxy up in %s (identity %s, image %s, volume %s; logs in %s)", name, n,
		time.Since(start).Round(time.Millisecond), c.identityURL, c.imageURL, c.volumeURL, dir)
	return c
}

// nodeConfig is the config of one node of c.
func (c *cluster) nodeConfig(g *nodeGroup, nd *node, state string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# written by the interop suite (cluster)
[DEFAULT]
state_path = %s
metrics_bind =
task_lease = %d
worker_self_reference_url = %s

[dashboard]
bind =

[database]
connection = %s

[identity]
bind = %s
public_url = %s

[image]
bind = %s
public_url = %s
enabled_backends = fast:s3, cheap:s3, reliable:s3, %s:http
default_backend = fast
allowed_import_hosts = %s, does-not.exist
staging_store = s3

`, state, int(clusterLease/time.Second), nd.imageURL, g.database, nd.idBind, c.identityURL, nd.imgBind, c.imageURL,
		readOnlyStore, c.web.hostPort)
	for _, id := range append(clusterStores, store.StagingID) {
		fmt.Fprintf(&b, "[store:%s]\n", id)
		if id != store.StagingID {
			fmt.Fprintf(&b, "store_description = %s store (S3)\n", id)
		}
		for _, k := range sortedKeys(c.s3Options(id)) {
			fmt.Fprintf(&b, "%s = %s\n", k, c.s3Options(id)[k])
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, `[store:%s]
store_description = Read-only HTTP store
http_store_base_url = %s/

[volume]
bind = %s
public_url = %s
enabled_backends = local

[backend:local]
volume_driver = file
volume_backend_name = local
volumes_dir = %s

[backup]
backup_driver = s3
backup_s3_endpoint_url = %s
backup_s3_store_bucket = cluster-backups
backup_s3_store_access_key = %s
backup_s3_store_secret_key = %s
`, readOnlyStore, c.web.url, nd.volBind, c.volumeURL, c.volumesDir, c.s3.url, c.s3.accessKey, c.s3.secretKey)
	return b.String()
}

// s3Options are the [store:<id>] options of a store of c.
func (c *cluster) s3Options(id string) map[string]string {
	return map[string]string{"s3_store_host": c.s3.url, "s3_store_bucket": c.buckets[id],
		"s3_store_access_key": c.s3.accessKey, "s3_store_secret_key": c.s3.secretKey,
		"s3_store_region": "us-east-1", "s3_store_create_bucket_on_put": "true"}
}

// s3Driver opens the S3 driver of store id, to look into its bucket.
func (c *cluster) s3Driver(t *testing.T, id string) *s3.Driver {
	t.Helper()
	d, err := drivers.Factories()["s3"](context.Background(), config.Store{ID: id, Type: "s3", Options: c.s3Options(id)})
	if err != nil {
		t.Fatal(err)
	}
	return d.(*s3.Driver)
}

// startHAProxy runs HAProxy in the foreground: one frontend per service
// listening on frontends[svc], balancing round robin over backends[svc],
// each server health-checked on /healthcheck every second. A request
// whose connection a dead server refuses is sent to another one.
func startHAProxy(t *testing.T, dir string, frontends map[string]string, backends map[string][]string) *proc {
	t.Helper()
	var b strings.Builder
	b.WriteString(`# written by the interop suite (cluster)
global
    maxconn 4096
    log stdout format raw local0

defaults
    mode http
    log global
    option httplog
    option redispatch
    retries 3
    timeout connect 2s
    timeout client 10m
    timeout server 10m
    timeout http-request 30s
    timeout queue 30s
`)
	for _, svc := range sortedKeys(frontends) {
		fmt.Fprintf(&b, "\nfrontend %s\n    bind %s\n    default_backend %s\n\nbackend %s\n    balance roundrobin\n", svc, frontends[svc], svc, svc)
		b.WriteString("    option httpchk GET /healthcheck\n    http-check expect status 200\n    default-server inter 1s fall 2 rise 1\n")
		for i, addr := range backends[svc] {
			fmt.Fprintf(&b, "    server node%d %s check\n", i, addr)
		}
	}
	conf := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return startProc(t, "haproxy", filepath.Join(dir, "haproxy.log"), baseEnv(), dir, "haproxy", "-db", "-f", conf)
}

// TestCluster runs three nodes behind HAProxy and drives them through the
// load balancer: the CLI scenarios, the tempest lists, then the chaos run
// (mixed workload while nodes are killed), after which nothing may be
// stuck or orphaned.
func TestCluster(t *testing.T) {
	requireInterop(t)
	defer logTook(t, time.Now())
	c := startCluster(t, "3", 3)
	t.Run("cli", func(t *testing.T) {
		requireTools(t, "openstack", "glance", "cinder")
		runCLI(t, c.ashlar)
	})
	t.Run("tempest", func(t *testing.T) {
		requireTools(t, "tempest", "stestr", "python3")
		runTempest(t, c.ashlar)
	})
	t.Run("chaos", func(t *testing.T) {
		d := 3 * time.Minute
		if s := os.Getenv("ASHLAR_CHAOS_SECONDS"); s != "" { // shorter runs while developing
			n, err := strconv.Atoi(s)
			if err != nil {
				t.Fatal(err)
			}
			d = time.Duration(n) * time.Second
		}
		c.chaos(t, chaosOpts{clients: 8, duration: d, killEvery: 20 * time.Second})
	})
}

// TestClusterThroughput measures the mixed workload of the chaos run
// without kills, on one node and on three behind HAProxy (succeeded
// operations per minute). It runs only with ASHLAR_CLUSTER_BENCH=1 (the
// figures in docs/cluster.md; ASHLAR_CLUSTER_BENCH_SECONDS, default 60).
func TestClusterThroughput(t *testing.T) {
	requireInterop(t)
	if os.Getenv("ASHLAR_CLUSTER_BENCH") != "1" {
		t.Skip("set ASHLAR_CLUSTER_BENCH=1 to measure the cluster's throughput")
	}
	d := time.Minute
	if s := os.Getenv("ASHLAR_CLUSTER_BENCH_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		d = time.Duration(n) * time.Second
	}
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d-nodes", n), func(t *testing.T) {
			c := startCluster(t, strconv.Itoa(n), n)
			st := c.chaos(t, chaosOpts{clients: 8, duration: d})
			t.Logf("%d node(s): %d operations succeeded in %v", n, st.succeeded, d)
		})
	}
}
