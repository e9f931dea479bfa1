//go:build ceph

package rbd

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/ceph/go-ceph/rbd"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/image/store/storetest"
	"github.com/ashlar-dev/ashlar/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// newDriver opens the store as client.glance on the shared cluster's
// images pool, with options on top of the defaults.
func newDriver(t testing.TB, opts map[string]string) *Driver {
	t.Helper()
	c := testenv.SharedCeph(t)
	o := map[string]string{OptPool: "images", OptUser: "glance", OptCephConf: c.Conf, OptConnectTimeout: "20"}
	for k, v := range opts {
		o[k] = v
	}
	co := config.NewOptions(config.Store{ID: "ceph", Type: "rbd", Options: o})
	cfg := ParseConfig(co)
	if p := co.Problems(); len(p) > 0 {
		t.Fatal(p)
	}
	d, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// leftovers lists the images an upload of key left behind.
func leftovers(d *Driver) func(t *testing.T, key string) []string {
	return func(t *testing.T, key string) []string {
		ioctx, err := d.io()
		if err != nil {
			t.Fatal(err)
		}
		names, err := rbd.GetImageNames(ioctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, n := range names {
			if strings.HasPrefix(n, key+".") {
				out = append(out, n)
			}
		}
		return out
	}
}

func TestConformance(t *testing.T) {
	for _, thin := range []string{"false", "true"} {
		t.Run("thin="+thin, func(t *testing.T) {
			// A small chunk size puts several objects in the suite's
			// objects, and exercises the writers in flight.
			d := newDriver(t, map[string]string{OptChunkSize: "1", OptThin: thin})
			storetest.Run(t, func(t *testing.T) store.Driver { return d }, storetest.Options{
				Leftovers: leftovers(d), ExtraSizes: []int{1<<20 - 1, 1 << 20, 1<<20 + 1}})
		})
	}
}

// TestLayout: an image is glance_store's RBD image with a protected
// snapshot "snap", located at rbd://<fsid>/<pool>/<image>/snap; uploads of
// unknown length grow the image in large steps and end at the exact size.
func TestLayout(t *testing.T) {
	ctx := context.Background()
	c := testenv.SharedCeph(t)
	d := newDriver(t, nil)
	key := storetest.Key(t)
	data := storetest.Data(3<<20+5, 1)
	if _, err := d.Put(ctx, key, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Delete(ctx, key) })
	loc, err := d.Location(key)
	if err != nil || loc != "rbd://"+c.FSID+"/images/"+key+"/snap" {
		t.Fatalf("Location = %q, %v", loc, err)
	}
	ioctx, _ := d.io()
	img, err := rbd.OpenImageReadOnly(ioctx, key, rbd.NoSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	size, _ := img.GetSize()
	if size != uint64(len(data)) {
		t.Fatalf("image size %d, want %d", size, len(data))
	}
	info, _ := img.Stat()
	if info.Obj_size != 8<<20 {
		t.Errorf("object size %d, want rbd_store_chunk_size 8 MiB", info.Obj_size)
	}
	if p, err := img.GetSnapshot(SnapName).IsProtected(); err != nil || !p {
		t.Fatalf("snapshot snap protected = %v, %v", p, err)
	}
	props := d.Properties()
	if props["pool"] != "images" || props["user"] != "glance" {
		t.Fatalf("properties %v", props)
	}
	for _, v := range props {
		if s, ok := v.(string); ok && strings.Contains(s, "AQ") {
			t.Fatalf("properties show a key: %v", props)
		}
	}
}

// TestDeleteInUse: an image a volume was cloned from is in use: Delete is
// Conflict with Glance's message and keeps the data.
func TestDeleteInUse(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t, nil)
	key := storetest.Key(t)
	data := storetest.Data(1<<20, 2)
	if _, err := d.Put(ctx, key, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	ioctx, _ := d.io()
	opts := rbd.NewRbdImageOptions()
	defer opts.Destroy()
	if err := rbd.CloneImage(ioctx, key, SnapName, ioctx, key+"-child", opts); err != nil {
		t.Fatal(err)
	}
	if err := d.InUse(ctx, key); !errs.Is(err, errs.Conflict) {
		t.Fatalf("InUse of a cloned image = %v, want Conflict", err)
	}
	err := d.Delete(ctx, key)
	if !errs.Is(err, errs.Conflict) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Delete of a cloned image = %v, want Conflict (in use)", err)
	}
	if n, err := d.Size(ctx, key); err != nil || n != int64(len(data)) {
		t.Fatalf("Size after refused delete = %d, %v", n, err)
	}
	if err := rbd.RemoveImage(ioctx, key+"-child"); err != nil {
		t.Fatal(err)
	}
	if err := d.InUse(ctx, key); err != nil {
		t.Fatalf("InUse once the clone is gone = %v", err)
	}
	if err := d.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
}
