package interop

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
)

// The chaos run: clients do a mixed workload through the load balancer
// while a loop kills a random node (SIGKILL) and restarts it. Every
// operation the API accepted (answered 2xx) must end in its goal state or
// in a documented error state with its reason where the user looks
// (os_glance_failed_import and the image's import task; a volume user
// message); nothing may stay transitional, and every object in every
// store must belong to an image location (or staged data to an image
// waiting for its import). Requests refused or cut off by a kill are not
// accepted operations, but what they left is checked with everything else.

// chaosOpts shapes a workload run.
type chaosOpts struct {
	clients  int
	duration time.Duration
	// killEvery is the mean time between kills; 0 kills nothing (the
	// throughput runs).
	killEvery time.Duration
}

// Operation kinds of the workload.
const (
	opUpload        = "upload"     // PUT /file into a named store
	opImport        = "import"     // stage, then glance-direct into two stores
	opCopy          = "copy-image" // copy-image into a store the image lacks
	opVolFromImage  = "volume-from-image"
	opVolCreate     = "volume-create"   // a blank volume of a type, to upload
	opUploadToImage = "upload-to-image" // a type's image_service:store_id decides the store
	opDelete        = "delete"
)

// chaosOp is one operation a client attempted.
type chaosOp struct {
	kind     string
	accepted bool
	image    string
	volume   string
	stores   []string // stores the image should end up in
	md5      string
	// deleted: a later operation deleted the resource on purpose.
	deleted bool
	took    time.Duration
}

// chaosRun is the state of one run, shared by its clients.
type chaosRun struct {
	c       *cluster
	token   string
	project string
	hc      *http.Client
	data    []byte
	types   map[string]string // volume type name -> its image store
	end     time.Time

	mu  sync.Mutex
	ops []*chaosOp
	// created lists every image id a client created, for the multipart
	// upload check.
	created []string
}

// chaosClient is one client: its own pool of images and volumes it made.
type chaosClient struct {
	r       *chaosRun
	rng     *rand.Rand
	images  []*chaosOp // active images it may copy, make volumes from or delete
	volumes []*chaosOp // available volumes it may upload or delete
}

// do sends one request through the load balancer; an error is a
// transport failure (a node killed mid-request shows as a 502 instead).
func (r *chaosRun) do(method, url string, body any, hdr ...string) (int, []byte, error) {
	var rd io.Reader
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ct = bytes.NewReader(b), "application/octet-stream"
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Auth-Token", r.token)
	req.Header.Set("Content-Type", ct)
	if method == http.MethodPatch {
		req.Header.Set("Content-Type", "application/openstack-images-v2.1-json-patch")
	}
	req.Header.Set("OpenStack-API-Version", "volume 3.67")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := r.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// get reads a JSON document, retrying through kills; nil, 404 when it is
// gone.
func (r *chaosRun) get(url string) (map[string]any, int) {
	for i := 0; ; i++ {
		code, b, err := r.do("GET", url, nil)
		if err == nil && (code == 200 || code == 404) {
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			return m, code
		}
		if i > 100 {
			return nil, code
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (r *chaosRun) image(id string) (map[string]any, int) {
	return r.get(r.c.imageURL + "/v2/images/" + id)
}

func (r *chaosRun) volume(id string) (map[string]any, int) {
	m, code := r.get(r.c.volumeURL + "/v3/" + r.project + "/volumes/" + id)
	v, _ := m["volume"].(map[string]any)
	return v, code
}

// waitFor polls read until done says the resource left its transitional
// states, or the bound passes.
func waitFor(read func() (map[string]any, int), done func(map[string]any, int) bool) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		m, code := read()
		if done(m, code) {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func imageSettled(m map[string]any, code int) bool {
	if code == 404 {
		return true
	}
	st, _ := m["status"].(string)
	return m != nil && m["os_glance_import_task"] == nil && st != "saving" && st != "importing"
}

func volumeSettled(v map[string]any, code int) bool {
	if code == 404 {
		return true
	}
	st, _ := v["status"].(string)
	return v != nil && !transitionalVolume[st]
}

// transitionalVolume are the volume states nothing may stay in.
var transitionalVolume = map[string]bool{"creating": true, "downloading": true, "uploading": true, "deleting": true,
	"extending": true, "retyping": true, "attaching": true, "detaching": true, "backing-up": true,
	"restoring-backup": true, "maintenance": true, "reserved": true}

// retry sends a mutating request until the API answers something other
// than a transport failure or a 5xx (a node killed under it), a few times.
func (r *chaosRun) retry(method, url string, body any, hdr ...string) (int, []byte) {
	var code int
	var b []byte
	for i := 0; i < 4; i++ {
		var err error
		code, b, err = r.do(method, url, body, hdr...)
		if err == nil && code < 500 {
			return code, b
		}
		time.Sleep(500 * time.Millisecond)
	}
	return code, b
}

func (r *chaosRun) record(op *chaosOp, started time.Time) {
	op.took = time.Since(started)
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// createImage makes an image record (retried: a lost answer leaves a
// queued image, which is a resting state).
func (cl *chaosClient) createImage(kind string) string {
	code, b := cl.r.retry("POST", cl.r.c.imageURL+"/v2/images", map[string]any{
		"name": "chaos-" + kind, "disk_format": "raw", "container_format": "bare"})
	var m map[string]any
	if code != 201 || json.Unmarshal(b, &m) != nil {
		return ""
	}
	id, _ := m["id"].(string)
	cl.r.mu.Lock()
	cl.r.created = append(cl.r.created, id)
	cl.r.mu.Unlock()
	return id
}

// payload is a random slice of the run's data: 1 to 8 MiB.
func (cl *chaosClient) payload() ([]byte, string) {
	n := 1<<20 + cl.rng.IntN(7<<20)
	off := cl.rng.IntN(len(cl.r.data) - n)
	b := cl.r.data[off : off+n]
	sum := md5.Sum(b)
	return b, hex.EncodeToString(sum[:])
}

func (cl *chaosClient) pick(stores []string, n int) []string {
	s := slices.Clone(stores)
	cl.rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s[:n]
}

// newImage starts an operation of kind into n stores with a new image and
// the data to put into it; nil data when the image could not be made.
func (cl *chaosClient) newImage(kind string, n int) (*chaosOp, []byte) {
	op := &chaosOp{kind: kind, stores: cl.pick(clusterStores, n)}
	if op.image = cl.createImage(op.kind); op.image == "" {
		return op, nil
	}
	data, sum := cl.payload()
	op.md5 = sum
	return op, data
}

func (cl *chaosClient) upload() *chaosOp {
	op, data := cl.newImage(opUpload, 1)
	if data == nil {
		return op
	}
	code, _, err := cl.r.do("PUT", cl.r.c.imageURL+"/v2/images/"+op.image+"/file", data, "X-Image-Meta-Store", op.stores[0])
	op.accepted = err == nil && code == 204
	if op.accepted {
		cl.images = append(cl.images, op)
	}
	return op
}

func (cl *chaosClient) importDirect() *chaosOp {
	op, data := cl.newImage(opImport, 2)
	if data == nil {
		return op
	}
	if code, _, err := cl.r.do("PUT", cl.r.c.imageURL+"/v2/images/"+op.image+"/stage", data); err != nil || code != 204 {
		return op
	}
	op.accepted = cl.startImport(op.image, map[string]any{"method": map[string]any{"name": "glance-direct"},
		"stores": op.stores, "all_stores_must_succeed": false})
	if op.accepted {
		waitFor(func() (map[string]any, int) { return cl.r.image(op.image) }, imageSettled)
		if m, _ := cl.r.image(op.image); m["status"] == "active" {
			cl.images = append(cl.images, op)
		}
	}
	return op
}

// startImport posts an import, again when the answer was lost; a 409 to a
// repeat means an earlier attempt was accepted.
func (cl *chaosClient) startImport(id string, body map[string]any) bool {
	for i := 0; i < 4; i++ {
		code, _, err := cl.r.do("POST", cl.r.c.imageURL+"/v2/images/"+id+"/import", body)
		switch {
		case err == nil && code == 202:
			return true
		case err == nil && code == 409 && i > 0:
			return true
		case err == nil && code < 500:
			return false
		}
		time.Sleep(500 * time.Millisecond)
	}
	return false
}

func (cl *chaosClient) copyImage() *chaosOp {
	op := &chaosOp{kind: opCopy}
	if len(cl.images) == 0 {
		return nil
	}
	src := cl.images[cl.rng.IntN(len(cl.images))]
	m, code := cl.r.image(src.image)
	if code != 200 || m["status"] != "active" {
		return nil
	}
	have := strings.Split(fmt.Sprint(m["stores"]), ",")
	var lacking []string
	for _, s := range clusterStores {
		if !slices.Contains(have, s) {
			lacking = append(lacking, s)
		}
	}
	if len(lacking) == 0 {
		return nil
	}
	op.image, op.md5, op.stores = src.image, src.md5, cl.pick(lacking, 1)
	op.accepted = cl.startImport(op.image, map[string]any{"method": map[string]any{"name": "copy-image"}, "stores": op.stores})
	if op.accepted {
		waitFor(func() (map[string]any, int) { return cl.r.image(op.image) }, imageSettled)
	}
	return op
}

// createVolume posts a volume (not retried: a repeat would make another).
func (cl *chaosClient) createVolume(op *chaosOp, spec map[string]any) {
	code, b, err := cl.r.do("POST", cl.r.c.volumeURL+"/v3/"+cl.r.project+"/volumes", map[string]any{"volume": spec})
	var m struct {
		Volume struct{ ID string } `json:"volume"`
	}
	if err != nil || code != 202 || json.Unmarshal(b, &m) != nil {
		return
	}
	op.volume, op.accepted = m.Volume.ID, true
	waitFor(func() (map[string]any, int) { return cl.r.volume(op.volume) }, volumeSettled)
	if v, _ := cl.r.volume(op.volume); v["status"] == "available" {
		cl.volumes = append(cl.volumes, op)
	}
}

func (cl *chaosClient) volumeFromImage() *chaosOp {
	if len(cl.images) == 0 {
		return nil
	}
	src := cl.images[cl.rng.IntN(len(cl.images))]
	op := &chaosOp{kind: opVolFromImage, image: src.image}
	cl.createVolume(op, map[string]any{"size": 1, "imageRef": src.image, "name": "chaos-from-image"})
	return op
}

func (cl *chaosClient) uploadToImage() *chaosOp {
	names := make([]string, 0, len(cl.r.types))
	for n := range cl.r.types {
		names = append(names, n)
	}
	sort.Strings(names)
	typ := names[cl.rng.IntN(len(names))]
	vol := &chaosOp{kind: opVolCreate}
	cl.createVolume(vol, map[string]any{"size": 1, "volume_type": typ, "name": "chaos-typed"})
	if !vol.accepted {
		return vol
	}
	if v, _ := cl.r.volume(vol.volume); v["status"] != "available" {
		return vol
	}
	cl.volumes = slices.DeleteFunc(cl.volumes, func(o *chaosOp) bool { return o == vol })
	op := &chaosOp{kind: opUploadToImage, volume: vol.volume, stores: []string{cl.r.types[typ]}}
	code, b, err := cl.r.do("POST", cl.r.c.volumeURL+"/v3/"+cl.r.project+"/volumes/"+vol.volume+"/action",
		map[string]any{"os-volume_upload_image": map[string]any{"image_name": "chaos-upload", "disk_format": "qcow2",
			"container_format": "bare"}})
	var m struct {
		Up struct {
			ImageID string `json:"image_id"`
		} `json:"os-volume_upload_image"`
	}
	if err == nil && code == 202 && json.Unmarshal(b, &m) == nil && m.Up.ImageID != "" {
		op.accepted, op.image = true, m.Up.ImageID
		cl.r.mu.Lock()
		cl.r.created = append(cl.r.created, op.image)
		cl.r.mu.Unlock()
		waitFor(func() (map[string]any, int) { return cl.r.volume(op.volume) }, volumeSettled)
		waitFor(func() (map[string]any, int) { return cl.r.image(op.image) }, imageSettled)
	}
	cl.volumes = append(cl.volumes, vol)
	cl.r.record(vol, time.Now())
	return op
}

func (cl *chaosClient) deleteOne() *chaosOp {
	op := &chaosOp{kind: opDelete}
	var victim *chaosOp
	url := ""
	if len(cl.volumes) > 0 && (len(cl.images) == 0 || cl.rng.IntN(2) == 0) {
		i := cl.rng.IntN(len(cl.volumes))
		victim = cl.volumes[i]
		cl.volumes = slices.Delete(cl.volumes, i, i+1)
		op.volume, url = victim.volume, cl.r.c.volumeURL+"/v3/"+cl.r.project+"/volumes/"+victim.volume
	} else if len(cl.images) > 0 {
		i := cl.rng.IntN(len(cl.images))
		victim = cl.images[i]
		cl.images = slices.Delete(cl.images, i, i+1)
		op.image, url = victim.image, cl.r.c.imageURL+"/v2/images/"+victim.image
		// Volumes made from it stay; its copies go with it.
	} else {
		return nil
	}
	code, _ := cl.r.retry("DELETE", url, nil)
	op.accepted = code == 204 || code == 202
	if op.accepted || code == 404 {
		cl.r.mu.Lock()
		for _, o := range cl.r.ops {
			if (op.image != "" && o.image == op.image) || (op.volume != "" && o.volume == op.volume && o.kind != opUploadToImage) {
				o.deleted = true
			}
		}
		victim.deleted = true
		cl.r.mu.Unlock()
	}
	if op.volume != "" && op.accepted {
		waitFor(func() (map[string]any, int) { return cl.r.volume(op.volume) }, volumeSettled)
	}
	return op
}

// poolMax bounds what one client keeps: past it, it deletes (so the
// stores hold about a gigabyte at most).
const poolMax = 12

// run does operations until the run's end.
func (cl *chaosClient) run() {
	for time.Now().Before(cl.r.end) {
		started := time.Now()
		var op *chaosOp
		n := cl.rng.IntN(12)
		if len(cl.images)+len(cl.volumes) > poolMax {
			n = 11
		}
		switch {
		case n < 3:
			op = cl.upload()
		case n < 5:
			op = cl.importDirect()
		case n < 6:
			op = cl.copyImage()
		case n < 8:
			op = cl.volumeFromImage()
		case n < 9:
			op = cl.uploadToImage()
		default:
			op = cl.deleteOne()
		}
		if op != nil {
			cl.r.record(op, started)
		}
	}
}

// chaosStats are the counts a run prints.
type chaosStats struct {
	ops, accepted, succeeded, failedWithReason, failedNoReason, stuck, orphans, missing, kills int
	byKind                                                                                     map[string][4]int // attempted, accepted, succeeded, failed with reason
	takeovers                                                                                  []time.Duration
	problems                                                                                   []string
}

func (st *chaosStats) problem(format string, args ...any) {
	if len(st.problems) < 40 {
		st.problems = append(st.problems, fmt.Sprintf(format, args...))
	}
}

// chaos runs the workload on c while killing nodes, then checks the end
// state and fails on anything stuck, orphaned or failed without a reason.
func (c *cluster) chaos(t *testing.T, o chaosOpts) *chaosStats {
	ctx := context.Background()
	adm, ti, err := login(ctx, c.authURL(), "admin", adminPassword, "admin")
	if err != nil {
		t.Fatal(err)
	}
	r := &chaosRun{c: c, token: adm.token, project: ti.Token.Project.ID, hc: &http.Client{Timeout: 90 * time.Second},
		data: randomBytes(t, 16<<20), types: map[string]string{}}
	for _, s := range []string{"cheap", "reliable"} {
		name := fmt.Sprintf("chaos-%s-%d", s, time.Now().UnixNano())
		code, b := r.retry("POST", c.volumeURL+"/v3/"+r.project+"/types", map[string]any{"volume_type": map[string]any{
			"name": name, "extra_specs": map[string]string{"image_service:store_id": s}}})
		if code != 200 {
			t.Fatalf("volume type %s: %d %s", name, code, b)
		}
		r.types[name] = s
	}
	st := &chaosStats{byKind: map[string][4]int{}}
	start := time.Now()
	r.end = start.Add(o.duration)
	var wg sync.WaitGroup
	for i := range o.clients {
		cl := &chaosClient{r: r, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(i)))}
		wg.Go(cl.run)
	}
	if o.killEvery > 0 {
		c.killLoop(t, r.end, o.killEvery, st)
	}
	wg.Wait()
	workload := time.Since(start)
	// Every node up, every task finished: then the state is final.
	for _, nd := range c.g.nodes {
		if nd.proc.exited() {
			c.g.start(t, nd)
		}
	}
	settleStart := time.Now()
	c.settle(t, 3*time.Minute)
	settled := time.Since(settleStart)
	c.verify(t, r, st)
	for _, op := range r.ops {
		k := st.byKind[op.kind]
		k[0]++
		if op.accepted {
			k[1]++
		}
		st.byKind[op.kind] = k
	}
	t.Logf("chaos: %d clients for %s, %d kills (lease %v); settled %s after the workload",
		o.clients, workload.Round(time.Second), st.kills, clusterLease, settled.Round(time.Millisecond))
	for _, kind := range []string{opUpload, opImport, opCopy, opVolFromImage, opVolCreate, opUploadToImage, opDelete} {
		k := st.byKind[kind]
		t.Logf("  %-18s attempted %4d  accepted %4d  succeeded %4d  failed with reason %4d", kind, k[0], k[1], k[2], k[3])
	}
	t.Logf("chaos counts: accepted=%d succeeded=%d failed_with_reason=%d failed_without_reason=%d stuck=%d orphans=%d missing_data=%d (operations attempted %d)",
		st.accepted, st.succeeded, st.failedWithReason, st.failedNoReason, st.stuck, st.orphans, st.missing, st.ops)
	t.Logf("throughput: %.1f succeeded operations per minute", float64(st.succeeded)/workload.Minutes())
	if len(st.takeovers) > 0 {
		d := slices.Clone(st.takeovers)
		slices.Sort(d)
		t.Logf("takeover of a killed node's tasks: %d tasks, min %v, median %v, max %v (lease %v)", len(d),
			d[0].Round(time.Millisecond), d[len(d)/2].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond), clusterLease)
	}
	for _, p := range st.problems {
		t.Error(p)
	}
	if st.stuck > 0 || st.orphans > 0 || st.failedNoReason > 0 || st.missing > 0 {
		t.Errorf("chaos: %d stuck, %d orphaned objects, %d failed without a reason, %d locations without data",
			st.stuck, st.orphans, st.failedNoReason, st.missing)
	}
	return st
}

// killLoop kills a random node about every `every` until end, and brings
// it back a couple of seconds later; it measures how long the tasks the
// node held take to be claimed by another node.
func (c *cluster) killLoop(t *testing.T, end time.Time, every time.Duration, st *chaosStats) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var measure sync.WaitGroup
	var mu sync.Mutex
	for {
		wait := every/2 + time.Duration(rng.Int64N(int64(every)))
		if time.Now().Add(wait).After(end) {
			break
		}
		time.Sleep(wait)
		nd := c.g.nodes[rng.IntN(len(c.g.nodes))]
		held := c.heldTasks(t, nd.id)
		c.g.kill(nd)
		killed := time.Now()
		st.kills++
		t.Logf("killed %s (%s) holding %d tasks", nd.name, nd.id, len(held))
		measure.Go(func() {
			got, left := c.takeovers(held, killed)
			mu.Lock()
			st.takeovers = append(st.takeovers, got...)
			mu.Unlock()
			if len(left) > 0 {
				t.Logf("tasks of %s not taken over within %v: %v", nd.name, 4*clusterLease, left)
			}
		})
		time.Sleep(2 * time.Second)
		c.g.start(t, nd)
	}
	measure.Wait()
}

// heldTasks are the epochs of the running tasks node holds.
func (c *cluster) heldTasks(t *testing.T, node string) map[string]int64 {
	out, err := db.QueryMap(context.Background(), c.g.db, db.Pair[string, int64],
		`SELECT id, epoch FROM tasks WHERE lease_owner = ? AND state = 'running'`, node)
	if err != nil {
		t.Error(err)
	}
	return out
}

// takeovers polls the tasks a killed node held until each is claimed
// again (its epoch moved), and returns how long after the kill each was,
// and the states of those that were not. A task the node finished just
// before it died is not counted.
func (c *cluster) takeovers(held map[string]int64, killed time.Time) (out []time.Duration, left map[string]string) {
	left = map[string]string{}
	deadline := killed.Add(4 * clusterLease)
	for len(held) > 0 && time.Now().Before(deadline) {
		for id, epoch := range held {
			var now int64
			var state string
			if err := c.g.db.QueryRowContext(context.Background(), `SELECT epoch, state FROM tasks WHERE id = ?`, id).Scan(&now, &state); err != nil {
				left[id] = err.Error()
				delete(held, id)
				continue
			}
			if now != epoch {
				out = append(out, time.Since(killed))
				delete(held, id)
			} else if state != "running" {
				delete(held, id) // finished by the node just before it died
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	for id := range held {
		left[id] = "still held"
	}
	return out, left
}

// settle waits until no task is pending or running.
func (c *cluster) settle(t *testing.T, within time.Duration) {
	deadline := time.Now().Add(within)
	for {
		var n int
		if err := c.g.db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM tasks WHERE state IN ('pending', 'running')`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d tasks still unfinished %v after the workload", n, within)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// verify classifies every operation by the end state of what it made, and
// checks the whole database and every store.
func (c *cluster) verify(t *testing.T, r *chaosRun, st *chaosStats) {
	messages := map[string]bool{}
	if m, code := r.get(c.volumeURL + "/v3/" + r.project + "/messages"); code == 200 {
		list, _ := m["messages"].([]any)
		for _, x := range list {
			if id, _ := x.(map[string]any)["resource_uuid"].(string); id != "" {
				messages[id] = true
			}
		}
	}
	for _, op := range r.ops {
		st.ops++
		if !op.accepted {
			continue
		}
		st.accepted++
		ok, reason := c.outcome(r, op, messages)
		k := st.byKind[op.kind]
		switch {
		case ok:
			st.succeeded++
			k[2]++
		case reason != "":
			st.failedWithReason++
			k[3]++
		default:
			st.failedNoReason++
			st.problem("%s of image %s volume %s: accepted, failed without a reason", op.kind, op.image, op.volume)
		}
		st.byKind[op.kind] = k
	}
	c.checkRows(t, st)
	c.checkStores(t, r, st)
	c.checkUsage(t, r, st)
}

// outcome says whether an accepted operation reached its goal, and else
// the reason recorded where the user looks ("" when none).
func (c *cluster) outcome(r *chaosRun, op *chaosOp, messages map[string]bool) (bool, string) {
	var im, v map[string]any
	var imCode, vCode int
	if op.image != "" {
		im, imCode = r.image(op.image)
	}
	if op.volume != "" {
		v, vCode = r.volume(op.volume)
	}
	failedImport := fmt.Sprint(im["os_glance_failed_import"])
	stores := strings.Split(fmt.Sprint(im["stores"]), ",")
	hasAll := func() bool {
		for _, s := range op.stores {
			if !slices.Contains(stores, s) {
				return false
			}
		}
		return true
	}
	switch op.kind {
	case opDelete:
		if op.image != "" {
			return imCode == 404, ""
		}
		return vCode == 404, ""
	case opUpload:
		if op.deleted {
			return true, ""
		}
		return im["status"] == "active" && hasAll() && im["checksum"] == op.md5, ""
	case opImport, opCopy:
		if op.deleted && imCode == 404 {
			return true, ""
		}
		if im["status"] == "active" && hasAll() && im["checksum"] == op.md5 {
			return true, ""
		}
		if failedImport != "" && failedImport != "<nil>" {
			return false, "os_glance_failed_import=" + failedImport
		}
		return false, c.importTaskMessage(r, op.image)
	case opVolFromImage, opVolCreate:
		if op.deleted && vCode == 404 || v["status"] == "available" {
			return true, ""
		}
		if v["status"] == "error" && messages[op.volume] {
			return false, "volume user message"
		}
		return false, ""
	case opUploadToImage:
		if im["status"] == "active" && hasAll() && (v["status"] == "available" || vCode == 404) {
			return true, ""
		}
		if imCode == 404 && messages[op.volume] {
			return false, "volume user message"
		}
		return false, ""
	}
	return false, ""
}

// importTaskMessage is the message of the image's last import task.
func (c *cluster) importTaskMessage(r *chaosRun, id string) string {
	m, code := r.get(c.imageURL + "/v2/images/" + id + "/tasks")
	if code != 200 {
		return ""
	}
	tasks, _ := m["tasks"].([]any)
	for i := len(tasks) - 1; i >= 0; i-- {
		tk, _ := tasks[i].(map[string]any)
		if tk["status"] == "failure" {
			msg, _ := tk["message"].(string)
			return msg
		}
	}
	return ""
}

// checkRows counts what stays transitional, over the whole database.
func (c *cluster) checkRows(t *testing.T, st *chaosStats) {
	ctx := context.Background()
	err := db.EachRow(ctx, c.g.db, func(r db.Row) error {
		var id, status string
		var size *int64
		if err := r.Scan(&id, &status, &size); err != nil {
			return err
		}
		if status == "saving" || status == "importing" || status == "uploading" && size == nil {
			st.stuck++
			st.problem("image %s stuck in %s", id, status)
		}
		return nil
	}, `SELECT id, status, size FROM images`)
	if err != nil {
		t.Fatal(err)
	}
	err = db.EachRow(ctx, c.g.db, func(r db.Row) error {
		var id, status string
		if err := r.Scan(&id, &status); err != nil {
			return err
		}
		if transitionalVolume[status] {
			st.stuck++
			st.problem("volume %s stuck in %s", id, status)
		}
		return nil
	}, `SELECT id, status FROM volumes`)
	if err != nil {
		t.Fatal(err)
	}
	var tasks int
	if err := c.g.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM tasks WHERE state IN ('pending', 'running')`).Scan(&tasks); err != nil {
		t.Fatal(err)
	}
	if tasks > 0 {
		st.stuck += tasks
		st.problem("%d tasks unfinished", tasks)
	}
}

// checkStores finds the objects no image location (or staged image)
// accounts for, the unfinished multipart uploads, the locations whose
// object is missing, and the volume files without a volume.
func (c *cluster) checkStores(t *testing.T, r *chaosRun, st *chaosStats) {
	ctx := context.Background()
	locations := map[[2]string]bool{}
	err := db.EachRow(ctx, c.g.db, func(row db.Row) error {
		var id, s string
		if err := row.Scan(&id, &s); err != nil {
			return err
		}
		locations[[2]string{s, id}] = true
		return nil
	}, `SELECT image_id, store FROM image_locations`)
	if err != nil {
		t.Fatal(err)
	}
	staged := map[string]bool{}
	err = db.EachRow(ctx, c.g.db, func(row db.Row) error {
		var id string
		if err := row.Scan(&id); err != nil {
			return err
		}
		staged[id] = true
		return nil
	}, `SELECT id FROM images WHERE status = 'importing' OR (status = 'uploading' AND size IS NOT NULL)`)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := db.EachRow(ctx, c.g.db, func(row db.Row) error {
		var id string
		err := row.Scan(&id)
		ids = append(ids, id)
		return err
	}, `SELECT id FROM images`); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	ids = append(ids, r.created...)
	r.mu.Unlock()
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for _, sid := range append(clusterStores, store.StagingID) {
		d := c.s3Driver(t, sid)
		found := map[string]bool{}
		err := d.List(ctx, func(key string) error {
			found[key] = true
			if sid == store.StagingID && !staged[key] || sid != store.StagingID && !locations[[2]string{sid, key}] {
				st.orphans++
				st.problem("orphaned object %s in store %s", key, sid)
			}
			return nil
		})
		if err != nil && !errs.Is(err, errs.NotFound) {
			t.Fatalf("listing %s: %v", sid, err)
		}
		for _, id := range ids {
			_ = d.ListUploads(ctx, id, func(key, upload string) error {
				st.orphans++
				st.problem("unfinished multipart upload %s of %s in store %s", upload, key, sid)
				return nil
			})
		}
		for loc := range locations {
			if loc[0] == sid && !found[loc[1]] {
				st.missing++
				st.problem("image %s has a location in %s without its object", loc[1], sid)
			}
		}
	}
	ents, err := os.ReadDir(c.volumesDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range ents {
		id, ok := strings.CutPrefix(e.Name(), "volume-")
		if !ok {
			continue
		}
		var n int
		if err := c.g.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM volumes WHERE id = ?`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			st.orphans++
			st.problem("volume file %s without a volume", e.Name())
		}
	}
}

// checkUsage compares /v2/info/usage with the rows and with the bytes the
// stores hold for the project's images.
func (c *cluster) checkUsage(t *testing.T, r *chaosRun, st *chaosStats) {
	ctx := context.Background()
	m, code := r.get(c.imageURL + "/v2/info/usage")
	if code != 200 {
		st.problem("GET /v2/info/usage: %d", code)
		return
	}
	num := func(path ...string) int64 {
		var x any = m
		for _, p := range path {
			x, _ = x.(map[string]any)[p]
		}
		f, _ := x.(float64)
		return int64(f)
	}
	apiBytes, apiCount := num("usage", "image_size_total", "usage"), num("usage", "image_count_total", "usage")
	var rowBytes, rowCount, s3RowBytes int64
	if err := c.g.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(COALESCE(i.size, 0)), 0),
COALESCE(SUM(CASE WHEN l.store IN (?, ?, ?) THEN COALESCE(i.size, 0) ELSE 0 END), 0) FROM images i
JOIN image_locations l ON l.image_id = i.id WHERE i.owner = ?`, clusterStores[0], clusterStores[1], clusterStores[2],
		r.project).Scan(&rowBytes, &s3RowBytes); err != nil {
		t.Fatal(err)
	}
	if err := c.g.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM images WHERE owner = ?`, r.project).Scan(&rowCount); err != nil {
		t.Fatal(err)
	}
	var storeBytes int64
	err := db.EachRow(ctx, c.g.db, func(row db.Row) error {
		var id, sid string
		if err := row.Scan(&id, &sid); err != nil {
			return err
		}
		if !slices.Contains(clusterStores, sid) {
			return nil
		}
		n, err := c.s3Driver(t, sid).Size(ctx, id)
		if err == nil {
			storeBytes += n
		}
		return nil
	}, `SELECT l.image_id, l.store FROM image_locations l JOIN images i ON i.id = l.image_id WHERE i.owner = ?`, r.project)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("usage: API %d bytes in %d images; rows %d bytes in %d images (%d bytes in the S3 stores); the S3 stores hold %d bytes of them",
		apiBytes, apiCount, rowBytes, rowCount, s3RowBytes, storeBytes)
	if apiBytes != rowBytes || apiCount != rowCount || storeBytes != s3RowBytes {
		st.problem("usage: API %d bytes / %d images, rows %d / %d, S3 rows %d bytes, S3 objects %d bytes",
			apiBytes, apiCount, rowBytes, rowCount, s3RowBytes, storeBytes)
	}
}
