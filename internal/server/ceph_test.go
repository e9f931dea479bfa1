//go:build ceph

package server

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rbd"

	"github.com/ashlar-dev/ashlar/internal/apitest"
	"github.com/ashlar-dev/ashlar/internal/identity"
	"github.com/ashlar-dev/ashlar/internal/image/store/drivers"
	"github.com/ashlar-dev/ashlar/internal/testenv"
	voldrivers "github.com/ashlar-dev/ashlar/internal/volume/driver/drivers"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// TestCeph runs Ashlar with an rbd volume backend and an rbd image store
// in one cluster, through the APIs: an image uploaded to the rbd store, a
// volume made from it (a copy-on-write clone of the image's snapshot), the
// volume uploaded to the rbd store (checksums of its whole content), and
// a snapshot, a volume from it and a clone (COW children of their
// sources, checked in the cluster).
func TestCeph(t *testing.T) {
	c := testenv.SharedCeph(t)
	cs := startCephServer(t, c, "", "enabled_backends = ceph\n")
	token, vol, images, waitFor := cs.token, cs.vol, cs.images, cs.waitFor
	volumes, fsid := c.AdminPool(t, "volumes")
	parent := func(name string) string { return testenv.RBDParent(t, volumes, name) }

	// An image in the rbd store: 6 MiB of data, then 2 MiB of zeros.
	data := make([]byte, 8<<20)
	_, _ = rand.Read(data[:6<<20])
	img := images.MustJSON(201, images.Do(token, "POST", "/v2/images",
		`{"name": "ceph-img", "disk_format": "raw", "container_format": "bare"}`))
	imgID := img["id"].(string)
	images.Must(204, images.Do(token, "PUT", "/v2/images/"+imgID+"/file", data, "X-Image-Meta-Store", "ceph"))
	img = waitFor(images, "/v2/images/"+imgID, "", "active")
	wantLoc := "rbd://" + fsid + "/images/" + imgID + "/snap"
	if img["stores"] != "ceph" || img["direct_url"] != wantLoc {
		t.Fatalf("image in the rbd store: stores %v, direct_url %v; want ceph, %s", img["stores"], img["direct_url"], wantLoc)
	}

	typ := vol.MustJSON(200, vol.Do(token, "POST", "/types",
		`{"volume_type": {"name": "rbd-to-rbd", "extra_specs": {"image_service:store_id": "ceph"}}}`))
	typID := apitest.Dig(typ, "volume_type", "id").(string)

	// A volume from the image is a COW clone of its snapshot.
	start := time.Now()
	v := vol.MustJSON(202, vol.Do(token, "POST", "/volumes",
		`{"volume": {"size": 1, "imageRef": "`+imgID+`", "volume_type": "`+typID+`"}}`))
	volID := apitest.Dig(v, "volume", "id").(string)
	waitFor(vol, "/volumes/"+volID, "volume", "available")
	t.Logf("volume from a raw image in the rbd store: available after %v", time.Since(start))
	if p := parent("volume-" + volID); p != "images/"+imgID+"@snap" {
		t.Fatalf("volume from image has parent %q, want images/%s@snap (a COW clone)", p, imgID)
	}
	// The image is in use by that clone: Glance refuses its delete (409)
	// and keeps it (Ashlar answered 204 and failed in the background).
	if r := images.Do(token, "DELETE", "/v2/images/"+imgID, nil); r.Code != http.StatusConflict ||
		!strings.Contains(string(r.Body), "could not be deleted because it is in use") {
		t.Fatalf("delete of an image a volume is cloned from: %d %s, want 409 in use", r.Code, r.Body)
	}
	waitFor(images, "/v2/images/"+imgID, "", "active")

	// Upload to image into the type's store, the rbd store: the whole
	// 1 GiB volume, hashed as it streams.
	up := vol.MustJSON(202, vol.Do(token, "POST", "/volumes/"+volID+"/action",
		`{"os-volume_upload_image": {"image_name": "from-rbd", "disk_format": "raw", "container_format": "bare"}}`))
	upID := apitest.Dig(up, "os-volume_upload_image", "image_id").(string)
	upImg := waitFor(images, "/v2/images/"+upID, "", "active")
	waitFor(vol, "/volumes/"+volID, "volume", "available")
	whole := io.MultiReader(bytes.NewReader(data), io.LimitReader(zeros{}, 1<<30-int64(len(data))))
	m5, s512 := md5.New(), sha512.New()
	if _, err := io.Copy(io.MultiWriter(m5, s512), whole); err != nil {
		t.Fatal(err)
	}
	if upImg["stores"] != "ceph" || upImg["size"] != float64(1<<30) || upImg["checksum"] != hex.EncodeToString(m5.Sum(nil)) ||
		upImg["os_hash_value"] != hex.EncodeToString(s512.Sum(nil)) {
		t.Fatalf("uploaded image: stores %v size %v checksum %v", upImg["stores"], upImg["size"], upImg["checksum"])
	}
	if !strings.HasPrefix(fmt.Sprint(upImg["direct_url"]), "rbd://"+fsid+"/images/"+upID+"/") {
		t.Fatalf("uploaded image's direct_url %v", upImg["direct_url"])
	}

	// Snapshot, volume from snapshot, clone: COW children.
	snap := vol.MustJSON(202, vol.Do(token, "POST", "/snapshots", `{"snapshot": {"volume_id": "`+volID+`", "name": "s"}}`))
	snapID := apitest.Dig(snap, "snapshot", "id").(string)
	waitFor(vol, "/snapshots/"+snapID, "snapshot", "available")
	fromSnap := vol.MustJSON(202, vol.Do(token, "POST", "/volumes", `{"volume": {"size": 2, "snapshot_id": "`+snapID+`"}}`))
	fromSnapID := apitest.Dig(fromSnap, "volume", "id").(string)
	waitFor(vol, "/volumes/"+fromSnapID, "volume", "available")
	if p := parent("volume-" + fromSnapID); p != "volumes/volume-"+volID+"@snapshot-"+snapID {
		t.Fatalf("volume from snapshot has parent %q", p)
	}
	clone := vol.MustJSON(202, vol.Do(token, "POST", "/volumes", `{"volume": {"size": 2, "source_volid": "`+fromSnapID+`"}}`))
	cloneID := apitest.Dig(clone, "volume", "id").(string)
	waitFor(vol, "/volumes/"+cloneID, "volume", "available")
	if p := parent("volume-" + cloneID); p != "volumes/volume-"+fromSnapID+"@volume-"+cloneID+".clone_snap" {
		t.Fatalf("clone has parent %q", p)
	}

	// Everything goes again, children first.
	for _, id := range []string{cloneID, fromSnapID} {
		vol.Must(202, vol.Do(token, "DELETE", "/volumes/"+id, nil))
		waitGone(t, vol, token, "/volumes/"+id)
	}
	vol.Must(202, vol.Do(token, "DELETE", "/snapshots/"+snapID, nil))
	waitGone(t, vol, token, "/snapshots/"+snapID)
	vol.Must(202, vol.Do(token, "DELETE", "/volumes/"+volID, nil))
	waitGone(t, vol, token, "/volumes/"+volID)
	for _, id := range []string{imgID, upID} {
		images.Must(204, images.Do(token, "DELETE", "/v2/images/"+id, nil))
	}
	// The data goes too (the backend's delete may finish after the row).
	var names []string
	apitest.Eventually(t, 60*time.Second, func() bool {
		names, _ = rbd.GetImageNames(volumes)
		return len(names) == 0
	}, func() string {
		return fmt.Sprintf("volumes pool still holds %v (volume %s, from snapshot %s, clone %s)", names, volID, fromSnapID, cloneID)
	})
}

// cephServer is an Ashlar server with an rbd store (ceph) and an rbd
// volume backend (ceph) in the shared cluster, and clients for its APIs.
type cephServer struct {
	token       string
	vol, images *apitest.Client
	// waitFor polls path until the object (under key, if set) has status
	// want, failing the test on error or killed.
	waitFor func(cl *apitest.Client, path, key, want string) map[string]any
}

// startCephServer starts a server whose image stores are fast (file) and
// ceph (rbd) plus those of stores ("name:type, ..." with their sections in
// extra), and whose [volume] section ends with volume (enabled_backends at
// least); extra may add store and backend sections.
func startCephServer(t *testing.T, c *testenv.Ceph, stores, volume string, extra ...string) *cephServer {
	t.Setenv(identity.EnvAdminPassword, adminPassword)
	cfg := parseTestConfig(t, "sqlite:///"+t.TempDir()+"/a.db", map[string]string{
		"image": `enabled_backends = fast:file, ceph:rbd` + stores + `
default_backend = fast
show_multiple_locations = true
show_image_direct_url = true`,
		"store:ceph": `rbd_store_pool = images
rbd_store_user = glance
rbd_store_ceph_conf = ` + c.Conf + `
rbd_thin_provisioning = true`,
		"volume": volume,
		"backend:ceph": `volume_driver = rbd
rbd_pool = volumes
rbd_user = cinder
rbd_ceph_conf = ` + c.Conf + "\n" + strings.Join(extra, "\n")}, drivers.Check, voldrivers.Check)
	srv, err := New(context.Background(), cfg, cephTestLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); _ = srv.Run(ctx, func() { close(ready) }) }()
	t.Cleanup(func() { stop(); <-done; srv.Close() })
	select {
	case <-ready:
	case <-done:
		t.Fatal("server did not start")
	}
	cs := &cephServer{}
	cs.token, cs.vol, cs.images = apiClients(t, cfg)
	messages := func() string { return fmt.Sprintf("messages %s", cs.vol.Do(cs.token, "GET", "/messages", nil).Body) }
	cs.waitFor = func(cl *apitest.Client, path, key, want string) map[string]any {
		t.Helper()
		return waitStatus(t, cl, cs.token, path, key, want, 180*time.Second, messages)
	}
	return cs
}

// TestCephStoreMatrix is the feature Ashlar exists for, across backends:
// volume types whose image_service:store_id names the rbd store, a file
// store and an S3 store, on volumes in the rbd backend and in the file
// backend. Every upload lands in the named store, with the checksum and
// os_hash_value of the volume's whole content.
func TestCephStoreMatrix(t *testing.T) {
	c := testenv.SharedCeph(t)
	m := testenv.StartMinIO(t)
	cs := startCephServer(t, c, ", obj:s3", "enabled_backends = ceph, local\n", `[store:obj]
s3_store_host = `+m.Endpoint+`
s3_store_bucket = matrix
s3_store_access_key = `+m.AccessKey+`
s3_store_secret_key = `+m.SecretKey+`
s3_store_create_bucket_on_put = true
s3_store_region = `+m.Region+`
[backend:local]
volume_driver = file
volumes_dir = `+t.TempDir())
	token, vol, images, waitFor := cs.token, cs.vol, cs.images, cs.waitFor

	// The source: 6 MiB of random data then 2 MiB of zeros, in the file
	// store (so both backends stream it in); a 1 GiB volume holds it and
	// zeros after.
	data := make([]byte, 8<<20)
	_, _ = rand.Read(data[:6<<20])
	src := images.MustJSON(201, images.Do(token, "POST", "/v2/images",
		`{"name": "matrix-src", "disk_format": "raw", "container_format": "bare"}`))["id"].(string)
	images.Must(204, images.Do(token, "PUT", "/v2/images/"+src+"/file", data))
	waitFor(images, "/v2/images/"+src, "", "active")
	m5, s512 := md5.New(), sha512.New()
	if _, err := io.Copy(io.MultiWriter(m5, s512), io.MultiReader(bytes.NewReader(data),
		io.LimitReader(zeros{}, 1<<30-int64(len(data))))); err != nil {
		t.Fatal(err)
	}
	wantMD5, wantSHA := hex.EncodeToString(m5.Sum(nil)), hex.EncodeToString(s512.Sum(nil))

	type cell struct{ backend, store, volume, image string }
	var cells []*cell
	for _, backend := range []string{"ceph", "local"} {
		for _, st := range []string{"ceph", "fast", "obj"} {
			cl := &cell{backend: backend, store: st}
			typ := vol.MustJSON(200, vol.Do(token, "POST", "/types", fmt.Sprintf(`{"volume_type": {"name": "%s-to-%s",
"extra_specs": {"volume_backend_name": "%s", "image_service:store_id": "%s"}}}`, backend, st, backend, st)))
			v := vol.MustJSON(202, vol.Do(token, "POST", "/volumes", fmt.Sprintf(`{"volume": {"size": 1, "imageRef": "%s",
"volume_type": "%s"}}`, src, apitest.Dig(typ, "volume_type", "id"))))
			cl.volume = apitest.Dig(v, "volume", "id").(string)
			cells = append(cells, cl)
		}
	}
	for _, cl := range cells {
		v := waitFor(vol, "/volumes/"+cl.volume, "volume", "available")
		if host := fmt.Sprint(v["os-vol-host-attr:host"]); !strings.Contains(host, "@"+cl.backend+"#") {
			t.Fatalf("%s-to-%s: volume on host %s, want backend %s", cl.backend, cl.store, host, cl.backend)
		}
		up := vol.MustJSON(202, vol.Do(token, "POST", "/volumes/"+cl.volume+"/action",
			`{"os-volume_upload_image": {"image_name": "matrix", "disk_format": "raw", "container_format": "bare"}}`))
		cl.image = apitest.Dig(up, "os-volume_upload_image", "image_id").(string)
	}
	for _, cl := range cells {
		im := waitFor(images, "/v2/images/"+cl.image, "", "active")
		waitFor(vol, "/volumes/"+cl.volume, "volume", "available")
		if im["stores"] != cl.store || im["size"] != float64(1<<30) || im["checksum"] != wantMD5 ||
			im["os_hash_algo"] != "sha512" || im["os_hash_value"] != wantSHA {
			t.Errorf("%s-to-%s: image stores %v size %v checksum %v os_hash_value %.16v…; want %s, %d, %s, %.16s…",
				cl.backend, cl.store, im["stores"], im["size"], im["checksum"], im["os_hash_value"], cl.store, 1<<30, wantMD5, wantSHA)
		}
		// The store really holds it: a ranged read of the random part.
		r := images.Must(206, images.Do(token, "GET", "/v2/images/"+cl.image+"/file", nil, "Range", "bytes=4096-8191"))
		if !bytes.Equal(r.Body, data[4096:8192]) {
			t.Errorf("%s-to-%s: bytes 4096-8191 of the image differ from the volume's", cl.backend, cl.store)
		}
	}
	for _, cl := range cells {
		vol.Must(202, vol.Do(token, "DELETE", "/volumes/"+cl.volume, nil))
		images.Must(204, images.Do(token, "DELETE", "/v2/images/"+cl.image, nil))
	}
	for _, cl := range cells {
		waitGone(t, vol, token, "/volumes/"+cl.volume)
	}
}

// cephTestLogger is the server's log: discarded unless ASHLAR_TEST_LOG=1.
func cephTestLogger() *slog.Logger {
	if os.Getenv("ASHLAR_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// waitGone waits until path answers 404.
func waitGone(t *testing.T, c *apitest.Client, token, path string) {
	t.Helper()
	var r apitest.Resp
	apitest.Eventually(t, 120*time.Second, func() bool {
		r = c.Do(token, "GET", path, nil)
		return r.Code == http.StatusNotFound
	}, func() string { return fmt.Sprintf("%s still there: %d %s", path, r.Code, r.Body) })
}

// zeros reads as endless zeros.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
