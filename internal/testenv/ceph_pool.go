//go:build ceph

package testenv

import (
	"testing"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"

	"github.com/ashlar-dev/ashlar/internal/ceph"
)

// AdminPool connects to the cluster as client.admin and opens pool, both
// released when the test ends, and returns the pool's IO context and the
// cluster's fsid: for tests that look at the images the drivers made.
func (c *Ceph) AdminPool(t testing.TB, pool string) (*rados.IOContext, string) {
	t.Helper()
	conn, fsid, err := ceph.Connect("ceph", "admin", c.Conf, 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Shutdown)
	ioctx, err := conn.OpenIOContext(pool)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ioctx.Destroy)
	return ioctx, fsid
}

// RBDParent is the parent of image name of ioctx, as pool/image@snapshot,
// or "" for an image that is no clone: for tests that check what a
// driver cloned from what.
func RBDParent(t testing.TB, ioctx *rados.IOContext, name string) string {
	t.Helper()
	img, err := rbd.OpenImageReadOnly(ioctx, name, rbd.NoSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	p, err := img.GetParent()
	if err != nil {
		return ""
	}
	return p.Image.PoolName + "/" + p.Image.ImageName + "@" + p.Snap.SnapName
}
