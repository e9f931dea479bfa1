package file

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/testenv"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
	"github.com/ashlar-dev/ashlar/internal/volume/driver/drivertest"
)

const mib = 1 << 20

// mountXFS loop-mounts a fresh XFS with reflinks (mkfs.xfs -m reflink=1)
// of size bytes for the test.
func mountXFS(t testing.TB, size int64, reflink bool) string {
	t.Helper()
	r := "reflink=0"
	if reflink {
		r = "reflink=1"
	}
	return testenv.LoopFS(t, size, "xfsprogs", "mkfs.xfs", "-q", "-m", r)
}

// newDriverIn is a driver whose volumes_dir is a fresh directory in dir.
func newDriverIn(t testing.TB, dir string) *Driver {
	t.Helper()
	sub, err := os.MkdirTemp(dir, "backend-")
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(config.Backend{Name: "local", VolumeDriver: "file", VolumeBackendName: "local-file",
		Options: map[string]string{"volumes_dir": sub}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestConformanceReflinkXFS runs the suite where snapshots and clones are
// reflinks; TestConformance (the plain temp directory, ext4 or tmpfs on
// most machines) runs it on the sparse copy.
func TestConformanceReflinkXFS(t *testing.T) {
	mnt := mountXFS(t, 1<<30, true)
	drivertest.Run(t, func(t *testing.T) driver.Driver { return newDriverIn(t, mnt) })
}

// fiemap is struct fiemap with room for extents (linux/fiemap.h).
type fiemap struct {
	start, length                     uint64
	flags, mappedExtents, extentCount uint32
	reserved                          uint32
	extents                           [64]fiemapExtent
}

type fiemapExtent struct {
	logical, physical, length uint64
	reserved64                [2]uint64
	flags                     uint32
	reserved                  [3]uint32
}

const (
	fsIocFiemap        = 0xC020660B // _IOWR('f', 11, struct fiemap)
	fiemapFlagSync     = 0x1
	fiemapExtentLast   = 0x1
	fiemapExtentShared = 0x2000
)

// sharedBytes returns how many of the file's mapped bytes are in extents
// shared with another file (FIEMAP_EXTENT_SHARED), and how many are mapped.
func sharedBytes(t *testing.T, path string) (shared, mapped int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var start uint64
	for {
		m := fiemap{start: start, length: ^uint64(0) - start, flags: fiemapFlagSync, extentCount: 64}
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&m))); e != 0 {
			t.Fatalf("FIEMAP %s: %v", path, e)
		}
		if m.mappedExtents == 0 {
			return shared, mapped
		}
		for _, e := range m.extents[:m.mappedExtents] {
			mapped += int64(e.length)
			if e.flags&fiemapExtentShared != 0 {
				shared += int64(e.length)
			}
			start = e.logical + e.length
			if e.flags&fiemapExtentLast != 0 {
				return shared, mapped
			}
		}
	}
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	return int64(fs.Bavail) * fs.Bsize
}

// scattered is a volume of size bytes with data bytes of random data in
// 1 MiB pieces spread over it.
func scattered(size, data int64, seed byte) []byte {
	b := make([]byte, size)
	r := rand.NewChaCha8([32]byte{seed})
	n := data / mib
	for i := range n {
		off := i * (size / n)
		r.Read(b[off : off+mib])
	}
	return b
}

// createScattered creates volume id on d holding scattered(size, data,
// seed) and returns those bytes.
func createScattered(t *testing.T, d *Driver, id string, size, data int64, seed byte) []byte {
	t.Helper()
	b := scattered(size, data, seed)
	if err := d.CreateFrom(context.Background(), id, size, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return b
}

// scatteredOnXFS is a driver in a new 1 GiB XFS filesystem (with reflinks
// or without) holding volume v of createScattered(size, data, seed): it
// returns the driver, the filesystem's mount point and v's bytes.
func scatteredOnXFS(t *testing.T, reflink bool, size, data int64, seed byte) (*Driver, string, []byte) {
	t.Helper()
	mnt := mountXFS(t, 1<<30, reflink)
	d := newDriverIn(t, mnt)
	return d, mnt, createScattered(t, d, "v", size, data, seed)
}

// TestReflinks checks that on XFS with reflinks, snapshots, clones,
// volumes from snapshots and reverts share the source's blocks (FIEMAP
// reports every mapped byte shared) and take no space for the data.
func TestReflinks(t *testing.T) {
	const size, dataSize = 256 * mib, 64 * mib
	d, mnt, data := scatteredOnXFS(t, true, size, dataSize, 1)
	ctx := context.Background()
	before := freeBytes(t, mnt)
	steps := []struct {
		name string
		op   func() error
		file string
	}{
		{"snapshot", func() error { return d.CreateSnapshot(ctx, "v", "s") }, snapPrefix + "v" + snapSep + "s"},
		{"clone", func() error { return d.Clone(ctx, "v", "c", 2*size) }, volPrefix + "c"},
		{"from snapshot", func() error { return d.CreateFromSnapshot(ctx, "v", "s", "n", size) }, volPrefix + "n"},
		{"revert", func() error { return d.Revert(ctx, "v", "s") }, volPrefix + "v"},
	}
	for _, s := range steps {
		if err := s.op(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		shared, mapped := sharedBytes(t, filepath.Join(d.dir, s.file))
		if mapped < dataSize || shared != mapped {
			t.Errorf("%s: %d of %d mapped bytes shared, want all of at least %d: not a reflink", s.name, shared, mapped, dataSize)
		}
	}
	// Four copies of 64 MiB of data; reflinks cost metadata only.
	if used := before - freeBytes(t, mnt); used > 4*mib {
		t.Errorf("reflinks used %d bytes of space, want under 4 MiB (copies would take %d)", used, 4*dataSize)
	}
	// Written after the clone, the clone's blocks are its own again.
	if err := d.Delete(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(d.dir, volPrefix+"c"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{7}, mib), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := readVolume(t, d, "v"); !bytes.Equal(got, data) {
		t.Fatal("writing a clone changed its source")
	}
}

func readVolume(t *testing.T, d *Driver, id string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dir, volPrefix+id))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSparseCopyNoReflink checks the fallback: where the filesystem has
// no reflinks, a clone copies the data ranges only and shares nothing.
func TestSparseCopyNoReflink(t *testing.T) {
	const size, dataSize = 256 * mib, 16 * mib
	d, _, data := scatteredOnXFS(t, false, size, dataSize, 2)
	if err := d.Clone(context.Background(), "v", "c", size); err != nil {
		t.Fatal(err)
	}
	shared, mapped := sharedBytes(t, filepath.Join(d.dir, volPrefix+"c"))
	if shared != 0 || mapped < dataSize || mapped > 2*dataSize {
		t.Errorf("clone maps %d bytes (%d shared), want about %d, none shared", mapped, shared, dataSize)
	}
	if !bytes.Equal(readVolume(t, d, "c"), data) {
		t.Fatal("clone differs")
	}
}

// TestCopyAcrossFilesystems copies between two file backends on different
// filesystems, where neither FICLONE nor copy_file_range can be used: the
// read and write fallback, still sparse.
func TestCopyAcrossFilesystems(t *testing.T) {
	mnt := mountXFS(t, 1<<30, true)
	src, dst := newDriver(t), newDriverIn(t, mnt)
	ctx := context.Background()
	const size = 64 * mib
	data := createScattered(t, src, "v", size, 4*mib, 3)
	if err := driver.Copy(ctx, src, "v", dst, "v", size); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readVolume(t, dst, "v"), data) {
		t.Fatal("copy differs")
	}
	if n, err := dst.Allocated(ctx, "v"); err != nil || n > 8*mib {
		t.Fatalf("copy allocates %d bytes (%v) for 4 MiB of data", n, err)
	}
}

// TestFullFilesystem fills a small filesystem so that a snapshot, a clone
// and a revert fail half-way for lack of space: each is errs.TooLarge and
// leaves nothing, the reverted volume keeps its bytes, and no temporary
// file is left.
func TestFullFilesystem(t *testing.T) {
	mnt := testenv.Tmpfs(t, "64m")
	d := newDriverIn(t, mnt)
	ctx := context.Background()
	// A volume and its snapshot fill about 90 % of the space: one more
	// copy of the data does not fit.
	chunk := freeBytes(t, mnt) * 45 / 100 / mib * mib
	data := createScattered(t, d, "v", 2*chunk, chunk, 4)
	if err := d.CreateSnapshot(ctx, "v", "s"); err != nil {
		t.Fatal(err)
	}
	// Rewrite the volume's data in place (its blocks are allocated already).
	changed := scattered(2*chunk, chunk, 5)
	f, err := os.OpenFile(filepath.Join(d.dir, volPrefix+"v"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = writeNonZero(f, changed, 0, make([]byte, blockSize))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	if err := d.CreateSnapshot(ctx, "v", "s2"); !errs.Is(err, errs.TooLarge) {
		t.Errorf("snapshot on a full filesystem: %v, want TooLarge", err)
	}
	if err := d.Clone(ctx, "v", "c", int64(len(data))); !errs.Is(err, errs.TooLarge) {
		t.Errorf("clone on a full filesystem: %v, want TooLarge", err)
	}
	if err := d.Revert(ctx, "v", "s"); !errs.Is(err, errs.TooLarge) {
		t.Errorf("revert on a full filesystem: %v, want TooLarge", err)
	}
	if !bytes.Equal(readVolume(t, d, "v"), changed) {
		t.Fatal("a failed revert changed the volume")
	}
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{snapPrefix + "v" + snapSep + "s", volPrefix + "v"}; !equalStrings(names, want) {
		t.Fatalf("directory holds %v after the failures, want %v", names, want)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
