package interop

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/db/dbtest"
)

// taskLease is the task lease of the nodes in TestNodeDeath: a dead node's
// work must be taken over within two of them.
const taskLease = 2 * time.Second

// node is one `ashlar serve` of a group sharing a PostgreSQL database.
type node struct {
	name                     string
	configPath, logPath, dir string
	// idBind, imgBind and volBind are the services' bind addresses;
	// identityURL, imageURL and volURL reach them directly.
	idBind, imgBind, volBind      string
	identityURL, imageURL, volURL string
	proc                          *proc
	id                            string
}

// nodeGroup is the nodes and what they share.
type nodeGroup struct {
	nodes []*node
	// state is the state directory the nodes of TestNodeDeath share.
	state    string
	database string
	db       *db.DB
	env      []string
	web      *slowWeb
	// t is the test the group belongs to: nodes restarted in a subtest
	// live on until it ends.
	t *testing.T
}

// startNodes starts n nodes on one fresh PostgreSQL database (skipped, or
// failed under CI=true, without one) and one state directory (stores,
// staging, volumes), as several hosts share a database and network
// storage.
func startNodes(t *testing.T, n int) *nodeGroup {
	t.Helper()
	dir := logDir(t, "nodes")
	state := filepath.Join(dir, "state")
	web := startSlowWeb(t)
	g := newNodeGroup(t, dir, n, func(g *nodeGroup, nd *node) string {
		return fmt.Sprintf(`# written by the interop suite (TestNodeDeath)
[DEFAULT]
state_path = %s
metrics_bind =
debug = true
task_lease = %d

[dashboard]
bind =

[database]
connection = %s

[identity]
bind = %s

[image]
bind = %s
enabled_backends = fast:file, cheap:file
default_backend = fast
allowed_import_hosts = %s

[volume]
bind = %s
enabled_backends = local
glance_api_servers = %s

[backend:local]
volume_driver = file
`, state, int(taskLease/time.Second), g.database, nd.idBind, nd.imgBind, web.hostPort, nd.volBind, nd.imageURL)
	})
	g.state, g.web = state, web
	return g
}

// newNodeGroup writes the config conf makes for each of n nodes (ports
// chosen, a fresh PostgreSQL database named in g.database), migrates the
// database and starts the nodes, one after the other (the first
// bootstraps the identity data). Without PostgreSQL the test is skipped,
// or fails under CI=true.
func newNodeGroup(t *testing.T, dir string, n int, conf func(g *nodeGroup, nd *node) string) *nodeGroup {
	t.Helper()
	if os.Getenv(dbtest.EnvPostgres) == "" {
		dbtest.SkipOrFail(t, dbtest.EnvPostgres+" is not set: several nodes need PostgreSQL")
	}
	bin := ashlarBinary(t)
	g := &nodeGroup{database: dbtest.Connection(t, "postgres"),
		env: append(baseEnv(), "ASHLAR_ADMIN_PASSWORD="+adminPassword), t: t}
	for i := range n {
		nd := &node{name: fmt.Sprintf("node%d", i), dir: dir}
		nd.idBind = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		nd.imgBind = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		nd.volBind = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		nd.identityURL, nd.imageURL, nd.volURL = "http://"+nd.idBind, "http://"+nd.imgBind, "http://"+nd.volBind
		nd.configPath = filepath.Join(dir, nd.name+".conf")
		nd.logPath = filepath.Join(dir, nd.name+".log")
		if err := os.WriteFile(nd.configPath, []byte(conf(g, nd)), 0o644); err != nil {
			t.Fatal(err)
		}
		g.nodes = append(g.nodes, nd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if r := runCmd(ctx, g.env, dir, bin, "db", "migrate", "--config", g.nodes[0].configPath); r.Err != nil {
		t.Fatalf("ashlar db migrate: %v\n%s%s", r.Err, r.Stdout, r.Stderr)
	}
	var err error
	if g.db, err = db.Open(ctx, g.database); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.db.Close() })
	for _, nd := range g.nodes {
		g.start(t, nd)
	}
	return g
}

var nodeIDRE = regexp.MustCompile(`msg=node id=([0-9a-f-]{36})`)

// start runs nd's `ashlar serve` and waits for its three services and the
// node id it logs.
func (g *nodeGroup) start(t *testing.T, nd *node) {
	t.Helper()
	before := tailFile(nd.logPath, 1<<20)
	nd.proc = startProc(g.t, nd.name, nd.logPath, g.env, nd.dir, ashlarBinary(t), "serve", "--config", nd.configPath)
	for _, u := range []string{nd.identityURL, nd.imageURL, nd.volURL} {
		waitHTTP(t, nd.proc, u+"/healthcheck", 60*time.Second)
	}
	m := nodeIDRE.FindAllStringSubmatch(strings.TrimPrefix(tailFile(nd.logPath, 1<<20), before), -1)
	if len(m) == 0 {
		t.Fatalf("%s logged no node id", nd.name)
	}
	nd.id = m[len(m)-1][1]
}

// kill ends nd at once, as a crash or a power cut would.
func (g *nodeGroup) kill(nd *node) {
	syscall.Kill(-nd.proc.cmd.Process.Pid, syscall.SIGKILL)
	<-nd.proc.done
}

func (g *nodeGroup) byID(id string) *node {
	for _, nd := range g.nodes {
		if nd.id == id {
			return nd
		}
	}
	return nil
}

// owner is the node holding the running task of kind about subject, or nil.
func (g *nodeGroup) owner(t *testing.T, kind, subject string) *node {
	t.Helper()
	var owner string
	err := g.db.QueryRowContext(context.Background(), `SELECT COALESCE(lease_owner, '') FROM tasks
WHERE kind = ? AND subject = ? AND state = 'running' ORDER BY created_at DESC LIMIT 1`, kind, subject).Scan(&owner)
	if err != nil && !db.IsNoRows(err) {
		t.Fatal(err)
	}
	return g.byID(owner)
}

// waitOwner polls until a node satisfying ok holds the task, and returns it.
func (g *nodeGroup) waitOwner(t *testing.T, kind, subject string, within time.Duration, ok func(*node) bool) *node {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if nd := g.owner(t, kind, subject); nd != nil && ok(nd) {
			return nd
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no node took task %s of %s within %v", kind, subject, within)
	return nil
}

// waitTakeover polls until the task of kind about subject has been claimed
// again after its first claim (the dead node's), and returns how long
// that took from since.
func (g *nodeGroup) waitTakeover(t *testing.T, kind, subject string, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		var attempts int
		err := g.db.QueryRowContext(context.Background(), `SELECT attempts FROM tasks WHERE kind = ? AND subject = ?
ORDER BY created_at DESC LIMIT 1`, kind, subject).Scan(&attempts)
		if err != nil && !db.IsNoRows(err) {
			t.Fatal(err)
		}
		if attempts >= 2 {
			return time.Since(since)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nobody took task %s of %s over within %v", kind, subject, within)
	return 0
}

// call sends a JSON request with a token and decodes a JSON answer.
func call(t *testing.T, token, method, url string, body any, want int, hdr ...string) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if strings.Contains(url, "/v2/images/") && method == http.MethodPatch {
		req.Header.Set("Content-Type", "application/openstack-images-v2.1-json-patch")
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, url, res.StatusCode, want, b)
	}
	var m map[string]any
	if len(b) > 0 && json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// adminToken is a project-scoped admin token from nd's identity service.
func adminToken(t *testing.T, nd *node) string {
	t.Helper()
	body := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
			"name": "admin", "domain": map[string]any{"id": "default"}, "password": adminPassword}}},
		"scope": map[string]any{"project": map[string]any{"name": "admin", "domain": map[string]any{"id": "default"}}}}}
	b, _ := json.Marshal(body)
	res, err := http.Post(nd.identityURL+"/v3/auth/tokens", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	tok := res.Header.Get("X-Subject-Token")
	if res.StatusCode != 201 || tok == "" {
		t.Fatalf("token: %d", res.StatusCode)
	}
	return tok
}

// waitImage polls the image through nd until cond holds.
func waitImage(t *testing.T, nd *node, token, id string, within time.Duration, cond func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		im := call(t, token, "GET", nd.imageURL+"/v2/images/"+id, nil, 200)
		if cond(im) {
			return im
		}
		if time.Now().After(deadline) {
			t.Fatalf("image %s: condition not met within %v: %v", id, within, im)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// storeFiles lists the files of every image store, staging and temp
// files included, by store.
func (g *nodeGroup) storeFiles(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, dir := range []string{"images/fast", "images/cheap", "staging"} {
		ents, err := os.ReadDir(filepath.Join(g.state, dir))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range ents {
			out[dir] = append(out[dir], e.Name())
		}
	}
	return out
}

// checkNoOrphans fails unless the stores hold exactly the objects of the
// given images' locations: nothing partial, temporary or staged is left.
func (g *nodeGroup) checkNoOrphans(t *testing.T, want map[string][]string) {
	t.Helper()
	got := g.storeFiles(t)
	for _, dir := range []string{"images/fast", "images/cheap", "staging"} {
		a, b := slices.Sorted(slices.Values(got[dir])), slices.Sorted(slices.Values(want[dir]))
		if !slices.Equal(a, b) {
			t.Errorf("%s holds %v, want %v", dir, a, b)
		}
	}
}

// slowWeb serves a fixed random image slowly, so a node can be killed
// while it downloads.
type slowWeb struct {
	hostPort string
	data     []byte
	sent     atomic.Int64
}

func startSlowWeb(t *testing.T) *slowWeb {
	t.Helper()
	w := &slowWeb{data: randomBytes(t, 16<<20)}
	l := listenFree(t)
	w.hostPort = l.Addr().String()
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Length", fmt.Sprint(len(w.data)))
		for off := 0; off < len(w.data); off += 256 << 10 {
			n, err := rw.Write(w.data[off:min(off+256<<10, len(w.data))])
			w.sent.Add(int64(n))
			if err != nil {
				return
			}
			rw.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond) // 16 MiB in about 3 s
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return w
}

func md5Hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func other(g *nodeGroup, nd *node) *node {
	for _, o := range g.nodes {
		if o != nd {
			return o
		}
	}
	return nil
}

// TestNodeDeath kills the node running an import and the node running an
// upload-to-image, with two nodes on one PostgreSQL: the other node takes
// the work over within two lease periods and finishes it, nothing is left
// orphaned, and a node's restart leaves its peer's live upload alone.
func TestNodeDeath(t *testing.T) {
	requireInterop(t)
	g := startNodes(t, 2)
	tok := adminToken(t, g.nodes[0])
	var imported string

	t.Run("import", func(t *testing.T) {
		a := g.nodes[0]
		id := call(t, tok, "POST", a.imageURL+"/v2/images", map[string]any{"name": "killed-import",
			"disk_format": "raw", "container_format": "bare"}, 201)["id"].(string)
		g.web.sent.Store(0)
		call(t, tok, "POST", a.imageURL+"/v2/images/"+id+"/import", map[string]any{
			"method": map[string]any{"name": "web-download", "uri": "http://" + g.web.hostPort + "/img"},
			"stores": []string{"fast", "cheap"}}, 202)
		victim := g.waitOwner(t, "image.import", id, 10*time.Second, func(*node) bool { return g.web.sent.Load() > 2<<20 })
		g.kill(victim)
		survivor := other(g, victim)
		took := g.waitTakeover(t, "image.import", id, time.Now(), 2*taskLease+time.Second)
		t.Logf("import taken over by %s %v after %s died (lease %v)", survivor.name, took.Round(time.Millisecond), victim.name, taskLease)
		g.start(t, victim) // back for the next part, whatever this one finds
		im := waitImage(t, survivor, tok, id, 60*time.Second, func(m map[string]any) bool {
			return m["status"] == "active" && m["os_glance_import_task"] == nil
		})
		if im["checksum"] != md5Hex(g.web.data) || im["stores"] != "cheap,fast" || im["os_glance_failed_import"] != "" {
			t.Fatalf("imported image %v, want checksum %s in fast and cheap", im, md5Hex(g.web.data))
		}
		g.checkNoOrphans(t, map[string][]string{"images/fast": {id}, "images/cheap": {id}})
		imported = id
	})

	t.Run("upload-to-image", func(t *testing.T) {
		a := g.nodes[1]
		v := call(t, tok, "POST", a.volURL+"/v3/volumes", map[string]any{"volume": map[string]any{"size": 1}}, 202,
			"OpenStack-API-Version", "volume 3.67")["volume"].(map[string]any)
		vid := v["id"].(string)
		waitNodeVolume(t, a, tok, vid, "available")
		// Fill the volume with data (the backend's file, shared by the nodes).
		data := randomBytes(t, 1<<30)
		if err := os.WriteFile(filepath.Join(g.state, "volumes", "local", "volume-"+vid), data, 0o600); err != nil {
			t.Fatal(err)
		}
		up := call(t, tok, "POST", a.volURL+"/v3/volumes/"+vid+"/action", map[string]any{
			"os-volume_upload_image": map[string]any{"image_name": "killed-upload", "disk_format": "raw", "container_format": "bare"}},
			202, "OpenStack-API-Version", "volume 3.67")["os-volume_upload_image"].(map[string]any)
		img := up["image_id"].(string)
		victim := g.waitOwner(t, "volume.upload", vid, 10*time.Second, func(nd *node) bool {
			var st string
			_ = g.db.QueryRowContext(context.Background(), `SELECT status FROM images WHERE id = ?`, img).Scan(&st)
			return st == "saving"
		})
		g.kill(victim)
		survivor := other(g, victim)
		took := g.waitTakeover(t, "volume.upload", vid, time.Now(), 2*taskLease+time.Second)
		t.Logf("upload taken over by %s %v after %s died (lease %v)", survivor.name, took.Round(time.Millisecond), victim.name, taskLease)
		g.start(t, victim)
		im := waitImage(t, survivor, tok, img, 120*time.Second, func(m map[string]any) bool { return m["status"] == "active" })
		if im["checksum"] != md5Hex(data) {
			t.Fatalf("uploaded image checksum %v, want %s", im["checksum"], md5Hex(data))
		}
		waitNodeVolume(t, survivor, tok, vid, "available")
		g.checkNoOrphans(t, map[string][]string{"images/fast": {imported, img}, "images/cheap": {imported}})
	})

	t.Run("restart-leaves-peer-alone", func(t *testing.T) {
		a, b := g.nodes[0], g.nodes[1]
		id := call(t, tok, "POST", a.imageURL+"/v2/images", map[string]any{"name": "live-upload",
			"disk_format": "raw", "container_format": "bare"}, 201)["id"].(string)
		data := randomBytes(t, 8<<20)
		pr, pw := io.Pipe()
		done := make(chan int, 1)
		go func() {
			req, _ := http.NewRequest("PUT", a.imageURL+"/v2/images/"+id+"/file", pr)
			req.Header.Set("Content-Type", "application/octet-stream")
			req.Header.Set("X-Auth-Token", tok)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- 0
				return
			}
			res.Body.Close()
			done <- res.StatusCode
		}()
		// Stream slowly across a restart of the other node and two leases.
		go func() {
			for off := 0; off < len(data); off += 256 << 10 {
				if _, err := pw.Write(data[off : off+256<<10]); err != nil {
					return
				}
				time.Sleep(4 * taskLease / 32)
			}
			pw.Close()
		}()
		waitImage(t, a, tok, id, 10*time.Second, func(m map[string]any) bool { return m["status"] == "saving" })
		g.kill(b)
		g.start(t, b)
		if code := <-done; code != http.StatusNoContent {
			t.Fatalf("live upload answered %d after the peer restarted", code)
		}
		im := waitImage(t, b, tok, id, 10*time.Second, func(m map[string]any) bool { return m["status"] == "active" })
		if im["checksum"] != md5Hex(data) {
			t.Fatalf("checksum %v", im["checksum"])
		}
	})

	// Nothing is left half done.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := g.db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM tasks WHERE state IN ('pending', 'running')`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tasks unfinished", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitNodeVolume polls a volume through nd until it has status want.
func waitNodeVolume(t *testing.T, nd *node, token, id, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		v := call(t, token, "GET", nd.volURL+"/v3/volumes/"+id, nil, 200, "OpenStack-API-Version", "volume 3.67")["volume"].(map[string]any)
		if v["status"] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("volume %s status %v, want %s", id, v["status"], want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
