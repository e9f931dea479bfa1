//go:build ceph

package rbd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"

	"github.com/ashlar-dev/ashlar/internal/ceph"
	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/testenv"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
	"github.com/ashlar-dev/ashlar/internal/volume/driver/drivertest"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// newDriver returns a driver as client.cinder on the shared cluster's
// volumes pool, confined to a fresh RBD namespace (removed, with every
// image in it, when the test ends), so each driver starts empty.
func newDriver(t testing.TB, opts map[string]string) *Driver {
	t.Helper()
	c := testenv.SharedCeph(t)
	o := map[string]string{"rbd_pool": "volumes", "rbd_user": "cinder", "rbd_ceph_conf": c.Conf, "rados_connect_timeout": "20"}
	for k, v := range opts {
		o[k] = v
	}
	cfg, err := ParseConfig(config.Backend{Name: "ceph", VolumeDriver: "rbd", Options: o})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	ns := "t" + hex.EncodeToString(b)
	ioctx, err := d.io()
	if err != nil {
		t.Fatal(err)
	}
	ioctx.SetNamespace("")
	if err := rbd.NamespaceCreate(ioctx, ns); err != nil {
		t.Fatalf("creating namespace %s: %v", ns, err)
	}
	ioctx.SetNamespace(ns)
	d.namespace = ns
	t.Cleanup(func() {
		purge(t, ioctx)
		ioctx.SetNamespace("")
		if err := rbd.NamespaceRemove(ioctx, ns); err != nil {
			t.Errorf("removing namespace %s: %v", ns, err)
		}
		d.Close()
	})
	return d
}

// purge removes every image of ioctx's namespace, clones before their
// parents.
func purge(t testing.TB, ioctx *rados.IOContext) {
	t.Helper()
	for range 10 {
		names, err := rbd.GetImageNames(ioctx)
		if err != nil || len(names) == 0 {
			return
		}
		for _, n := range names {
			ceph.RemoveImage(ioctx, n)
		}
	}
	names, _ := rbd.GetImageNames(ioctx)
	t.Errorf("images left in the namespace: %v", names)
}

func TestConformance(t *testing.T) {
	// The suite deletes snapshots that volumes were made from: with
	// Cinder's default (no flatten) such a snapshot is busy, which
	// TestSnapshotBusy covers.
	drivertest.Run(t, func(t *testing.T) driver.Driver {
		return newDriver(t, map[string]string{"rbd_flatten_volume_from_snapshot": "true"})
	})
}

func parentOf(t *testing.T, d *Driver, id string) string {
	t.Helper()
	ioctx, _ := d.io()
	return testenv.RBDParent(t, ioctx, volPrefix+id)
}

// TestCOW checks that clones and volumes from snapshots are copy-on-write
// children of their source, and that the chain is flattened past
// rbd_max_clone_depth.
func TestCOW(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t, map[string]string{"rbd_max_clone_depth": "2"})
	data := bytes.Repeat([]byte("cow!"), 1<<18)
	if err := d.CreateFrom(ctx, "a", 4<<20, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := d.Clone(ctx, "a", "b", 8<<20); err != nil {
		t.Fatal(err)
	}
	if p := parentOf(t, d, "b"); p != "volumes/volume-a@volume-b.clone_snap" {
		t.Fatalf("b's parent is %q, want a COW clone of volume-a@volume-b.clone_snap", p)
	}
	if err := d.Clone(ctx, "b", "c", 8<<20); err != nil {
		t.Fatal(err)
	}
	if p := parentOf(t, d, "c"); p != "volumes/volume-b@volume-c.clone_snap" {
		t.Fatalf("c's parent is %q", p)
	}
	// c is two deep; a clone of c would be three: flattened, and its
	// temporary snapshot gone.
	if err := d.Clone(ctx, "c", "e", 8<<20); err != nil {
		t.Fatal(err)
	}
	if p := parentOf(t, d, "e"); p != "" {
		t.Fatalf("e past rbd_max_clone_depth still has parent %q", p)
	}
	ioctx, _ := d.io()
	img, _ := rbd.OpenImageReadOnly(ioctx, "volume-c", rbd.NoSnapshot)
	snaps, _ := img.GetSnapshotNames()
	img.Close()
	if len(snaps) != 0 {
		t.Fatalf("c keeps snapshots %v after a flattened clone", snaps)
	}
	v, _ := d.Open(ctx, "e")
	got := make([]byte, len(data))
	_, _ = v.ReadAt(got, 0)
	v.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("flattened clone reads wrong")
	}

	// Deleting the middle of the chain hides it until its clone goes.
	if err := d.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if ids, _ := d.List(ctx); strings.Join(ids, ",") != "a,c,e" {
		t.Fatalf("List after deleting b = %v", ids)
	}
	if err := d.Delete(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	// c went, then the hidden b, then a's clone snapshot.
	names, _ := rbd.GetImageNames(ioctx)
	if strings.Join(names, ",") != "volume-a,volume-e" && strings.Join(names, ",") != "volume-e,volume-a" {
		t.Fatalf("images after deleting the chain: %v", names)
	}
	img, _ = rbd.OpenImageReadOnly(ioctx, "volume-a", rbd.NoSnapshot)
	snaps, _ = img.GetSnapshotNames()
	img.Close()
	if len(snaps) != 0 {
		t.Fatalf("a keeps snapshots %v after its clones went", snaps)
	}
}

// TestSnapshotBusy: with rbd_flatten_volume_from_snapshot false (Cinder's
// default) a volume from a snapshot is its COW child, so the snapshot
// cannot be deleted while the volume exists: Conflict, naming it, and the
// snapshot stays usable.
func TestSnapshotBusy(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t, nil)
	if err := d.CreateFrom(ctx, "v", 1<<20, bytes.NewReader(bytes.Repeat([]byte{7}, 1<<20))); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateSnapshot(ctx, "v", "s"); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateFromSnapshot(ctx, "v", "s", "child", 2<<20); err != nil {
		t.Fatal(err)
	}
	if p := parentOf(t, d, "child"); p != "volumes/volume-v@snapshot-s" {
		t.Fatalf("child's parent %q, want a COW clone of volume-v@snapshot-s", p)
	}
	err := d.DeleteSnapshot(ctx, "v", "s")
	if !errs.Is(err, errs.Conflict) || !strings.Contains(err.Error(), "child") {
		t.Fatalf("DeleteSnapshot with a dependent volume = %v, want Conflict naming it", err)
	}
	if !errs.Is(d.Delete(ctx, "v"), errs.Conflict) {
		t.Fatal("deleting a volume with a snapshot must be refused")
	}
	if v, err := d.OpenSnapshot(ctx, "v", "s"); err != nil {
		t.Fatalf("snapshot after the refused delete: %v", err)
	} else {
		v.Close()
	}
	if err := d.Delete(ctx, "child"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteSnapshot(ctx, "v", "s"); err != nil {
		t.Fatalf("DeleteSnapshot once the child went: %v", err)
	}
}

// TestConnectionInfo checks Cinder's shape of an rbd connection_info.
func TestConnectionInfo(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t, nil)
	if err := d.Create(ctx, "v", 1<<20); err != nil {
		t.Fatal(err)
	}
	ci, err := d.InitializeConnection(ctx, "v", map[string]any{"host": "h"})
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.SharedCeph(t)
	want := map[string]any{
		"name": "volumes/" + d.namespace + "/volume-v", "hosts": []string{"127.0.0.1"},
		"ports": []string{strconv.Itoa(c.MonV1Port)}, "cluster_name": "ceph", "auth_enabled": true,
		"auth_username": "cinder", "secret_type": "ceph", "secret_uuid": c.FSID, "volume_id": "v",
		"discard": true, "access_mode": "rw",
	}
	if ci.DriverVolumeType != "rbd" || len(ci.Data) != len(want) {
		t.Fatalf("connection_info %+v", ci)
	}
	for k, v := range want {
		if got := ci.Data[k]; !equalAny(got, v) {
			t.Errorf("%s = %#v, want %#v", k, got, v)
		}
	}
	_, err = d.InitializeConnection(ctx, "missing", nil)
	if !errs.Is(err, errs.NotFound) {
		t.Fatalf("missing volume: %v", err)
	}
	d2 := newDriver(t, map[string]string{"rbd_secret_uuid": "457eb676-33da-42ec-9a8c-9293d545c337"})
	if err := d2.Create(ctx, "w", 1<<20); err != nil {
		t.Fatal(err)
	}
	ci, _ = d2.InitializeConnection(ctx, "w", nil)
	if ci.Data["secret_uuid"] != "457eb676-33da-42ec-9a8c-9293d545c337" {
		t.Fatalf("secret_uuid %v, want rbd_secret_uuid", ci.Data["secret_uuid"])
	}
}

func equalAny(a, b any) bool {
	as, ok1 := a.([]string)
	bs, ok2 := b.([]string)
	if ok1 && ok2 {
		return strings.Join(as, ",") == strings.Join(bs, ",")
	}
	return a == b
}

// TestUnavailable: a cluster that cannot be reached is errs.Unavailable,
// within rados_connect_timeout.
func TestUnavailable(t *testing.T) {
	c := testenv.SharedCeph(t)
	port, _ := testenv.FreePort()
	conf := t.TempDir() + "/ceph.conf"
	if err := os.WriteFile(conf, []byte("[global]\nmon host = 127.0.0.1:"+strconv.Itoa(port)+"\nkeyring = "+c.Keyring("cinder")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ := ParseConfig(config.Backend{Name: "down", Options: map[string]string{"rbd_pool": "volumes", "rbd_user": "cinder",
		"rbd_ceph_conf": conf, "rados_connect_timeout": "2"}})
	d, _ := New(cfg)
	err := d.Create(context.Background(), "v", 1<<20)
	if !errs.Is(err, errs.Unavailable) {
		t.Fatalf("Create on an unreachable cluster = %v, want Unavailable", err)
	}
}

// TestCloneImage: a volume from an image of an rbd store in the same
// cluster (glance_store's layout, written here as client.glance) is a
// COW clone of the image's snapshot; locations elsewhere are not handled.
func TestCloneImage(t *testing.T) {
	ctx := context.Background()
	c := testenv.SharedCeph(t)
	// As the image service would: client.glance (admin only to see the
	// children in the volumes pool, which glance cannot read).
	images, fsid := c.AdminPool(t, "images")
	name := "img-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	data := bytes.Repeat([]byte("image data "), 100000)
	if err := rbd.CreateImage(images, name, uint64(len(data)), rbd.NewRbdImageOptions()); err != nil {
		t.Fatal(err)
	}
	img, err := rbd.OpenImage(images, name, rbd.NoSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := img.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	s, err := img.CreateSnapshot("snap")
	if err == nil {
		err = s.Protect()
	}
	img.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		img, err := rbd.OpenImage(images, name, rbd.NoSnapshot)
		if err != nil {
			t.Error(err)
			return
		}
		_ = img.GetSnapshot("snap").Unprotect()
		_ = img.GetSnapshot("snap").Remove()
		img.Close()
		_ = rbd.RemoveImage(images, name)
	})

	d := newDriver(t, nil)
	for _, locs := range [][]string{nil, {"file:///x", "rbd://00000000-0000-0000-0000-000000000000/images/" + name + "/snap"},
		{"rbd://" + fsid + "/images/missing/snap"}} {
		if handled, err := d.CloneImage(ctx, "v", 2<<20, locs); handled || err != nil {
			t.Fatalf("CloneImage(%v) = %v, %v; want not handled", locs, handled, err)
		}
	}
	handled, err := d.CloneImage(ctx, "v", 4<<20, []string{"s3://x/y", "rbd://" + fsid + "/images/" + name + "/snap"})
	if !handled || err != nil {
		t.Fatalf("CloneImage = %v, %v", handled, err)
	}
	if p := parentOf(t, d, "v"); p != "images/"+name+"@snap" {
		t.Fatalf("volume's parent %q, want a COW clone of %s@snap", p, name)
	}
	v, _ := d.Open(ctx, "v")
	got := make([]byte, 4<<20)
	_, _ = v.ReadAt(got, 0)
	v.Close()
	if v.Size() != 4<<20 || !bytes.Equal(got[:len(data)], data) || !bytes.Equal(got[len(data):], make([]byte, 4<<20-len(data))) {
		t.Fatal("cloned volume reads wrong")
	}
	// The image's snapshot has the volume as its child while it lives.
	img, err = rbd.OpenImageReadOnly(images, name, "snap")
	if err != nil {
		t.Fatal(err)
	}
	kids, err := img.ListChildrenAttributes()
	img.Close()
	if err != nil || len(kids) != 1 || kids[0].ImageName != "volume-v" {
		t.Fatalf("children of the image's snapshot: %+v, %v", kids, err)
	}
	if err := d.Delete(ctx, "v"); err != nil {
		t.Fatal(err)
	}
}

// TestOverwriteClone restores over a copy-on-write child: the zeros of the
// new bytes hide the parent's data (not read through from it), the child
// keeps its parent, and nothing of the overwrite is left behind to keep
// the volume from being deleted.
func TestOverwriteClone(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t, nil)
	const size = 12 << 20
	old := make([]byte, size)
	_, _ = rand.Read(old)
	if err := d.CreateFrom(ctx, "base", size, bytes.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateSnapshot(ctx, "base", "s1"); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateFromSnapshot(ctx, "base", "s1", "child", size); err != nil {
		t.Fatal(err)
	}
	// 1 MiB of zeros, 1 MiB of data, a 5000-byte zero run inside the next
	// MiB of data (not block aligned), then nothing: the rest must read
	// as zeros although the parent has data there.
	want := make([]byte, size)
	_, _ = rand.Read(want[1<<20 : 3<<20])
	clear(want[2<<20+1000 : 2<<20+6000])
	if err := d.Overwrite(ctx, "child", bytes.NewReader(want[:3<<20])); err != nil {
		t.Fatal(err)
	}
	v, err := d.Open(ctx, "child")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, size)
	_, err = v.ReadAt(got, 0)
	v.Close()
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < size && got[i] == want[i] {
			i++
		}
		t.Fatalf("overwritten clone differs from the new bytes at offset %d", i)
	}
	if p := parentOf(t, d, "child"); p != "volumes/volume-base@snapshot-s1" {
		t.Errorf("child's parent after overwrite: %q", p)
	}
	if err := d.Delete(ctx, "child"); err != nil {
		t.Fatalf("delete after overwrite: %v", err)
	}
	if err := d.DeleteSnapshot(ctx, "base", "s1"); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "base"); err != nil {
		t.Fatal(err)
	}
}
