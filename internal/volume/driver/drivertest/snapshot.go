package drivertest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// snapshotTests cover snapshots, clones, revert and copies between
// backends. Their volumes are written after a snapshot or clone is taken,
// through the volume's path (driver.LocalFile) or, for volumes that are
// not local files, through the open volume (io.WriterAt).
var snapshotTests = []struct {
	name string
	fn   func(t *testing.T, newDriver func(t *testing.T) driver.Driver)
}{
	{"SnapshotPointInTime", one(testSnapshotPointInTime)},
	{"SnapshotErrors", one(testSnapshotErrors)},
	{"SnapshotDelete", one(testSnapshotDelete)},
	{"SnapshotSameIDConcurrent", one(testSnapshotSameIDConcurrent)},
	{"CreateFromSnapshot", one(testCreateFromSnapshot)},
	{"CloneIndependent", one(testCloneIndependent)},
	{"Revert", one(testRevert)},
	{"RevertAfterExtend", one(testRevertAfterExtend)},
	{"RevertErrors", one(testRevertErrors)},
	{"InterruptedLeavesNothing", one(testInterrupted)},
	{"ListSnapshots", one(testListSnapshots)},
	{"CopyBetweenBackends", testCopyBetweenBackends},
	{"NewVolumeErrors", testNewVolumeErrors},
}

// one adapts a test of one backend.
func one(fn func(t *testing.T, d driver.Driver)) func(t *testing.T, newDriver func(t *testing.T) driver.Driver) {
	return func(t *testing.T, newDriver func(t *testing.T) driver.Driver) { fn(t, newDriver(t)) }
}

// islands is size bytes of zeros with random data at a few unaligned
// places: a volume that is mostly holes.
func islands(size int, seed uint64) []byte {
	b := make([]byte, size)
	for i, at := range []int{0, size / 3, size/2 + 4097, size - 70000} {
		if at >= 0 && at < size {
			copy(b[at:], pattern(min(65536+i*1000, size-at), seed+uint64(i)))
		}
	}
	return b
}

// mustCreate creates volume id from data.
func mustCreate(t *testing.T, d driver.Driver, id string, data []byte) {
	t.Helper()
	if err := d.CreateFrom(context.Background(), id, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatalf("CreateFrom(%s): %v", id, err)
	}
}

// mustSnapshot creates snapshot snapshotID of volume volumeID.
func mustSnapshot(t *testing.T, d driver.Driver, volumeID, snapshotID string) {
	t.Helper()
	if err := d.CreateSnapshot(context.Background(), volumeID, snapshotID); err != nil {
		t.Fatalf("CreateSnapshot(%s, %s): %v", volumeID, snapshotID, err)
	}
}

// snapshotted creates volume v of size bytes (islands of seed) and its
// snapshot s, and returns the volume's data.
func snapshotted(t *testing.T, d driver.Driver, size int, seed uint64) []byte {
	t.Helper()
	data := islands(size, seed)
	mustCreate(t, d, "v", data)
	mustSnapshot(t, d, "v", "s")
	return data
}

// snapshottedThenWritten is snapshotted(seed) followed by writes to the
// volume (seed+1): it returns the snapshot's bytes and the volume's.
func snapshottedThenWritten(t *testing.T, d driver.Driver, size int, seed uint64) (snap, data []byte) {
	t.Helper()
	data = snapshotted(t, d, size, seed)
	snap = bytes.Clone(data)
	scribble(t, d, "v", data, seed+1)
	return snap, data
}

// write writes p at off into volume id, as an attached instance would:
// through the volume's path (driver.LocalFile), or through the open
// volume itself when it is an io.WriterAt (an RBD image through librbd).
func write(t *testing.T, d driver.Driver, id string, off int64, p []byte) {
	t.Helper()
	v, err := d.Open(context.Background(), id)
	if err != nil {
		t.Fatalf("Open(%s): %v", id, err)
	}
	defer v.Close()
	if w, ok := v.(io.WriterAt); ok {
		if _, err := w.WriteAt(p, off); err != nil {
			t.Fatalf("WriteAt(%s): %v", id, err)
		}
		return
	}
	lf, ok := v.(driver.LocalFile)
	if !ok {
		t.Fatalf("drivertest: volumes of %T are neither driver.LocalFile nor io.WriterAt; the suite cannot write them", d)
	}
	f, err := os.OpenFile(lf.Path(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// scribble writes over data and holes of volume id, whose bytes want
// holds, and applies the same writes to want.
func scribble(t *testing.T, d driver.Driver, id string, want []byte, seed uint64) {
	t.Helper()
	size := len(want)
	for i, at := range []int{0, size/3 + 100, size / 4, size - 5000} {
		p := pattern(min(8192, size-at), seed+uint64(i))
		write(t, d, id, int64(at), p)
		copy(want[at:], p)
	}
}

// readSnapshot reads a snapshot's extents (rebuild): its bytes when the
// extents hold all of its data.
func readSnapshot(t *testing.T, d driver.Driver, volumeID, snapshotID string) []byte {
	t.Helper()
	v, err := d.OpenSnapshot(context.Background(), volumeID, snapshotID)
	if err != nil {
		t.Fatalf("OpenSnapshot(%s, %s): %v", volumeID, snapshotID, err)
	}
	defer v.Close()
	return rebuild(t, v)
}

// rebuild reads v's extents only, into a buffer of v's size: equal to the
// volume's bytes when the extents hold all of its data.
func rebuild(t *testing.T, v driver.Volume) []byte {
	t.Helper()
	ext, err := v.Extents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, v.Size())
	for _, e := range ext {
		if e.Offset < 0 || e.Length <= 0 || e.Offset+e.Length > v.Size() {
			t.Fatalf("extent %+v outside a volume of %d bytes", e, v.Size())
		}
		if _, err := v.ReadAt(buf[e.Offset:e.Offset+e.Length], e.Offset); err != nil {
			t.Fatal(err)
		}
	}
	return buf
}

// equal fails the test when got is not want.
func equal(t *testing.T, got, want []byte, what string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d bytes, want %d", what, len(got), len(want))
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("%s: differs at byte %d", what, i)
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func snapshotExists(t *testing.T, d driver.Driver, volumeID, snapshotID string) bool {
	t.Helper()
	return opens(t, func() (driver.Volume, error) { return d.OpenSnapshot(context.Background(), volumeID, snapshotID) })
}

func testSnapshotPointInTime(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	const size = 4*mib + 123
	data := islands(size, 10)
	mustCreate(t, d, "v", data)
	mustSnapshot(t, d, "v", "s1")
	at1 := bytes.Clone(data)
	scribble(t, d, "v", data, 20)
	mustSnapshot(t, d, "v", "s2")
	at2 := bytes.Clone(data)
	scribble(t, d, "v", data, 30)
	if err := d.Extend(ctx, "v", 2*size); err != nil {
		t.Fatal(err)
	}
	write(t, d, "v", size+10, pattern(4096, 40))

	equal(t, readSnapshot(t, d, "v", "s1"), at1, "snapshot s1 after writes to and an extend of its volume")
	equal(t, readSnapshot(t, d, "v", "s2"), at2, "snapshot s2 after writes to and an extend of its volume")
	equal(t, readAll(t, d, "v")[:size], data, "volume after its snapshots")
}

func testSnapshotErrors(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	data := islands(mib, 11)
	mustCreate(t, d, "v", data)
	mustCreate(t, d, "w", islands(mib, 12))
	wantKind(t, d.CreateSnapshot(ctx, "missing", "s"), errs.NotFound)
	if snapshotExists(t, d, "missing", "s") {
		t.Fatal("a snapshot of a missing volume exists")
	}
	wantKind(t, d.CreateSnapshot(ctx, "v", "../s"), errs.Invalid)
	wantKind(t, d.CreateSnapshot(ctx, "../v", "s"), errs.Invalid)

	mustSnapshot(t, d, "v", "s")
	write(t, d, "v", 0, pattern(4096, 13))
	wantKind(t, d.CreateSnapshot(ctx, "v", "s"), errs.Conflict)
	equal(t, readSnapshot(t, d, "v", "s"), data, "snapshot after a refused second create of its id")

	// A snapshot belongs to its volume: the same id elsewhere is another
	// snapshot, or none.
	if snapshotExists(t, d, "w", "s") {
		t.Fatal("snapshot s of volume v opens as a snapshot of volume w")
	}
	wantKind(t, d.DeleteSnapshot(ctx, "w", "s"), errs.NotFound)
	_, err := d.OpenSnapshot(ctx, "v", "missing")
	wantKind(t, err, errs.NotFound)
	wantKind(t, d.DeleteSnapshot(ctx, "v", "missing"), errs.NotFound)
	_, err = d.OpenSnapshot(ctx, "v", "../../x")
	wantKind(t, err, errs.Invalid)

	// A volume with snapshots is not deleted.
	wantKind(t, d.Delete(ctx, "v"), errs.Conflict)
	if !exists(t, d, "v") || !snapshotExists(t, d, "v", "s") {
		t.Fatal("a refused Delete removed the volume or its snapshot")
	}
	if err := d.DeleteSnapshot(ctx, "v", "s"); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "v"); err != nil {
		t.Fatalf("Delete after the last snapshot went: %v", err)
	}
}

func testSnapshotDelete(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	data := islands(2*mib, 14)
	mustCreate(t, d, "v", data)
	for _, s := range []string{"a", "b"} {
		mustSnapshot(t, d, "v", s)
	}
	if err := d.DeleteSnapshot(ctx, "v", "a"); err != nil {
		t.Fatal(err)
	}
	if snapshotExists(t, d, "v", "a") {
		t.Fatal("deleted snapshot still opens")
	}
	wantKind(t, d.DeleteSnapshot(ctx, "v", "a"), errs.NotFound)
	equal(t, readSnapshot(t, d, "v", "b"), data, "the other snapshot after a delete")
	equal(t, readAll(t, d, "v"), data, "the volume after a snapshot delete")
	// The id is free again.
	if err := d.CreateSnapshot(ctx, "v", "a"); err != nil {
		t.Fatalf("CreateSnapshot after DeleteSnapshot of the id: %v", err)
	}
}

func testSnapshotSameIDConcurrent(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	data := islands(2*mib, 15)
	mustCreate(t, d, "v", data)
	const n = 6
	errc := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { errc <- d.CreateSnapshot(ctx, "v", "s") })
	}
	wg.Wait()
	close(errc)
	var ok int
	for err := range errc {
		if err == nil {
			ok++
			continue
		}
		wantKind(t, err, errs.Conflict)
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent creates of one snapshot succeeded, want 1", ok, n)
	}
	equal(t, readSnapshot(t, d, "v", "s"), data, "snapshot created concurrently")
}

func testCreateFromSnapshot(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	const size = 3*mib + 7
	snap, data := snapshottedThenWritten(t, d, size, 16)

	for _, c := range []struct {
		id   string
		size int
	}{{"same", size}, {"larger", size + 5*mib + 3}} {
		if err := d.CreateFromSnapshot(ctx, "v", "s", c.id, int64(c.size)); err != nil {
			t.Fatalf("CreateFromSnapshot(%s, %d): %v", c.id, c.size, err)
		}
		want := append(bytes.Clone(snap), make([]byte, c.size-size)...)
		equal(t, readAll(t, d, c.id), want, c.id+": snapshot's bytes then zeros")
		// Independent of the snapshot and its volume, both ways.
		scribble(t, d, c.id, want, 18)
		equal(t, readAll(t, d, c.id), want, c.id+" after its own writes")
		equal(t, readSnapshot(t, d, "v", "s"), snap, "snapshot after writes to a volume made from it")
		equal(t, readAll(t, d, "v"), data, "snapshot's volume after writes to a volume made from the snapshot")
	}
	// Nor does it need them any more.
	want := readAll(t, d, "larger")
	scribble(t, d, "v", data, 19)
	if err := d.DeleteSnapshot(ctx, "v", "s"); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "v"); err != nil {
		t.Fatal(err)
	}
	equal(t, readAll(t, d, "larger"), want, "volume from a snapshot after the snapshot and its volume went")
}

func testCloneIndependent(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	const size = 5*mib + 999
	src := islands(size, 23)
	mustCreate(t, d, "src", src)
	if err := d.Clone(ctx, "src", "same", size); err != nil {
		t.Fatal(err)
	}
	if err := d.Clone(ctx, "src", "larger", size+2*mib); err != nil {
		t.Fatal(err)
	}
	same := bytes.Clone(src)
	larger := append(bytes.Clone(src), make([]byte, 2*mib)...)
	equal(t, readAll(t, d, "same"), same, "clone")
	equal(t, readAll(t, d, "larger"), larger, "larger clone: source's bytes then zeros")

	scribble(t, d, "src", src, 24)
	equal(t, readAll(t, d, "same"), same, "clone after writes to its source")
	equal(t, readAll(t, d, "larger"), larger, "larger clone after writes to its source")
	scribble(t, d, "same", same, 25)
	equal(t, readAll(t, d, "src"), src, "source after writes to its clone")
	equal(t, readAll(t, d, "same"), same, "clone after its own writes")

	// The clone is as sparse as its source.
	checkSparse(t, d, "larger", 2*mib)
	if err := d.Delete(ctx, "src"); err != nil {
		t.Fatal(err)
	}
	equal(t, readAll(t, d, "larger"), larger, "clone after its source was deleted")
}

// checkSparse fails when volume id covers more than limit bytes of
// extents or, where the driver tells, of allocated space. A volume whose
// extents come in units (driver.Granular) may cover the units the data
// touches: up to two more, one partly used at each end of the data.
func checkSparse(t *testing.T, d driver.Driver, id string, limit int64) {
	t.Helper()
	v, err := d.Open(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if g, ok := v.(driver.Granular); ok {
		limit += 2 * g.Granularity()
	}
	ext, err := v.Extents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var covered int64
	for _, e := range ext {
		covered += e.Length
	}
	if covered > limit {
		t.Errorf("volume %s: extents cover %d bytes, want at most %d: holes were filled", id, covered, limit)
	}
	if a, ok := d.(driver.Allocator); ok {
		n, err := a.Allocated(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if n > limit {
			t.Errorf("volume %s allocates %d bytes, want at most %d: holes were filled", id, n, limit)
		}
	}
}

func testRevert(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	const size = 4*mib + 5
	snap, data := snapshottedThenWritten(t, d, size, 28)
	if err := d.Revert(ctx, "v", "s"); err != nil {
		t.Fatal(err)
	}
	equal(t, readAll(t, d, "v"), snap, "volume after revert")
	equal(t, readSnapshot(t, d, "v", "s"), snap, "snapshot after a revert to it")
	// The reverted volume and the snapshot stay independent.
	scribble(t, d, "v", data, 30)
	equal(t, readSnapshot(t, d, "v", "s"), snap, "snapshot after writes following a revert")
	if err := d.Revert(ctx, "v", "s"); err != nil {
		t.Fatal(err)
	}
	equal(t, readAll(t, d, "v"), snap, "volume after a second revert")
	checkSparse(t, d, "v", 2*mib)
}

func testRevertAfterExtend(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	const size = 2*mib + 77
	data := snapshotted(t, d, size, 31)
	if err := d.Extend(ctx, "v", 3*size); err != nil {
		t.Fatal(err)
	}
	write(t, d, "v", 0, pattern(4096, 32))
	write(t, d, "v", size-100, pattern(8192, 33)) // across the old end
	write(t, d, "v", 3*size-4096, pattern(4096, 34))
	if err := d.Revert(ctx, "v", "s"); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Clone(data), make([]byte, 2*size)...)
	equal(t, readAll(t, d, "v"), want, "extended volume after revert: the snapshot's bytes, then zeros, at its current size")
}

func testRevertErrors(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	data := islands(mib, 35)
	mustCreate(t, d, "v", data)
	mustCreate(t, d, "w", islands(mib, 36))
	mustSnapshot(t, d, "w", "s")
	wantKind(t, d.Revert(ctx, "v", "missing"), errs.NotFound)
	wantKind(t, d.Revert(ctx, "v", "s"), errs.NotFound) // w's snapshot
	wantKind(t, d.Revert(ctx, "missing", "s"), errs.NotFound)
	wantKind(t, d.Revert(ctx, "v", "../s"), errs.Invalid)
	equal(t, readAll(t, d, "v"), data, "volume after refused reverts")
	if exists(t, d, "missing") {
		t.Fatal("a refused revert of a missing volume made it")
	}
}

// countdown is a context whose Err turns to context.Canceled at its
// (n+1)th call: an operation cancelled at each of its checks in turn.
type countdown struct {
	context.Context
	mu   sync.Mutex
	left int
	done chan struct{}
}

func newCountdown(n int) *countdown {
	return &countdown{Context: context.Background(), left: n, done: make(chan struct{})}
}

func (c *countdown) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left <= 0 {
		select {
		case <-c.done:
		default:
			close(c.done)
		}
		return context.Canceled
	}
	c.left--
	return nil
}

func (c *countdown) Done() <-chan struct{} { return c.done }

// testInterrupted cancels each operation at each point where it looks at
// its context, from before it starts until it succeeds: every cancelled
// run must fail and leave nothing (and a cancelled Revert, the volume as
// it was).
func testInterrupted(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	const size = 3 * mib
	data := islands(size, 37)
	mustCreate(t, d, "v", data)
	mustSnapshot(t, d, "v", "base")
	snap := bytes.Clone(data)
	scribble(t, d, "v", data, 38)

	ops := []struct {
		name  string
		run   func(ctx context.Context) error
		check func(t *testing.T, ok bool) // ok: the run succeeded
		undo  func(t *testing.T)
	}{
		{"CreateSnapshot", func(ctx context.Context) error { return d.CreateSnapshot(ctx, "v", "s") },
			func(t *testing.T, ok bool) {
				if ok {
					equal(t, readSnapshot(t, d, "v", "s"), data, "snapshot")
				} else if snapshotExists(t, d, "v", "s") {
					t.Fatal("cancelled CreateSnapshot left a snapshot")
				}
			},
			func(t *testing.T) {
				if err := d.DeleteSnapshot(ctx, "v", "s"); err != nil {
					t.Fatal(err)
				}
			}},
		{"Clone", func(ctx context.Context) error { return d.Clone(ctx, "v", "c", size+mib) },
			func(t *testing.T, ok bool) {
				if ok {
					equal(t, readAll(t, d, "c"), append(bytes.Clone(data), make([]byte, mib)...), "clone")
				} else if exists(t, d, "c") {
					t.Fatal("cancelled Clone left a volume")
				}
			},
			func(t *testing.T) { mustDelete(t, d, "c") }},
		{"CreateFromSnapshot", func(ctx context.Context) error { return d.CreateFromSnapshot(ctx, "v", "base", "n", size) },
			func(t *testing.T, ok bool) {
				if ok {
					equal(t, readAll(t, d, "n"), snap, "volume from snapshot")
				} else if exists(t, d, "n") {
					t.Fatal("cancelled CreateFromSnapshot left a volume")
				}
			},
			func(t *testing.T) { mustDelete(t, d, "n") }},
		{"Revert", func(ctx context.Context) error { return d.Revert(ctx, "v", "base") },
			func(t *testing.T, ok bool) {
				if ok {
					equal(t, readAll(t, d, "v"), snap, "reverted volume")
				} else {
					equal(t, readAll(t, d, "v"), data, "volume after a cancelled revert")
				}
			},
			func(t *testing.T) {}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			for n := 0; ; n++ {
				if n > 10000 {
					t.Fatal("never succeeded")
				}
				err := op.run(newCountdown(n))
				op.check(t, err == nil)
				if err == nil {
					if n == 0 {
						t.Fatal("succeeded with its context cancelled before the call")
					}
					op.undo(t)
					break
				}
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled at check %d: error %v, want context.Canceled", n, err)
				}
			}
		})
	}
	// Nothing but what the test made is left.
	if l, ok := d.(driver.Lister); ok {
		ids, err := l.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, []string{"v"}) {
			t.Fatalf("volumes left: %v, want [v]", ids)
		}
	}
	if l, ok := d.(driver.SnapshotLister); ok {
		refs, err := l.ListSnapshots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(refs, []driver.SnapshotRef{{VolumeID: "v", SnapshotID: "base"}}) {
			t.Fatalf("snapshots left: %v, want v@base", refs)
		}
	}
}

func mustDelete(t *testing.T, d driver.Driver, id string) {
	t.Helper()
	if err := d.Delete(context.Background(), id); err != nil {
		t.Fatalf("Delete(%s): %v", id, err)
	}
}

func testListSnapshots(t *testing.T, d driver.Driver) {
	l, ok := d.(driver.SnapshotLister)
	if !ok {
		t.Skip("the driver does not list snapshots")
	}
	ctx := context.Background()
	mustCreate(t, d, "v", islands(mib, 39))
	mustCreate(t, d, "w", islands(mib, 40))
	want := []driver.SnapshotRef{{VolumeID: "v", SnapshotID: "a"}, {VolumeID: "v", SnapshotID: "b"}, {VolumeID: "w", SnapshotID: "a"}}
	for _, r := range want {
		mustSnapshot(t, d, r.VolumeID, r.SnapshotID)
	}
	got, err := l.ListSnapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b driver.SnapshotRef) int {
		return cmp.Or(strings.Compare(a.VolumeID, b.VolumeID), strings.Compare(a.SnapshotID, b.SnapshotID))
	})
	if !slices.Equal(got, want) {
		t.Fatalf("ListSnapshots = %v, want %v", got, want)
	}
	if vl, ok := d.(driver.Lister); ok {
		ids, err := vl.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, []string{"v", "w"}) {
			t.Fatalf("List = %v, want only the volumes [v w]", ids)
		}
	}
}

// hidden hides a driver's optional interfaces (Copier among them), so
// Copy streams the data as it would between different kinds of backend.
type hidden struct{ driver.Driver }

func testCopyBetweenBackends(t *testing.T, newDriver func(t *testing.T) driver.Driver) {
	ctx := context.Background()
	src, dst := newDriver(t), newDriver(t)
	const size = 32 * mib
	for i, c := range []struct {
		name     string
		src, dst driver.Driver
	}{{"native", src, dst}, {"streamed", hidden{src}, hidden{dst}}} {
		t.Run(c.name, func(t *testing.T) {
			id := "v-" + c.name
			data := islands(size, 41+uint64(i))
			mustCreate(t, src, id, data)
			if err := driver.Copy(ctx, c.src, id, c.dst, id, size+mib); err != nil {
				t.Fatal(err)
			}
			want := append(bytes.Clone(data), make([]byte, mib)...)
			equal(t, readAll(t, dst, id), want, "copy")
			checkSparse(t, dst, id, 2*mib)
			// Independent of the source, both ways.
			scribble(t, src, id, data, 43)
			equal(t, readAll(t, dst, id), want, "copy after writes to its source")
			scribble(t, dst, id, want, 44)
			equal(t, readAll(t, src, id), data, "source after writes to its copy")
		})
	}
}

// testNewVolumeErrors checks the errors of every operation that makes a
// new volume from a source (a volume from a snapshot, a clone, a copy to
// another backend, native or streamed): a missing source, a size smaller
// than the source, a bad id, a taken id (whose volume stays as it was), a
// cancelled context; and that none of them leaves a volume.
func testNewVolumeErrors(t *testing.T, newDriver func(t *testing.T) driver.Driver) {
	ctx := context.Background()
	d, d2 := newDriver(t), newDriver(t)
	const size = 2 * mib
	mustCreate(t, d, "v", islands(size, 21))
	mustSnapshot(t, d, "v", "s")
	taken := islands(mib, 22)
	mustCreate(t, d, "taken", taken)
	mustCreate(t, d2, "taken", taken)
	ops := []struct {
		name string
		src  string // the existing source
		dst  driver.Driver
		run  func(ctx context.Context, src, newID string, size int64) error
	}{
		{"CreateFromSnapshot", "s", d, func(ctx context.Context, src, newID string, size int64) error {
			return d.CreateFromSnapshot(ctx, "v", src, newID, size)
		}},
		{"Clone", "v", d, func(ctx context.Context, src, newID string, size int64) error {
			return d.Clone(ctx, src, newID, size)
		}},
		{"Copy", "v", d2, func(ctx context.Context, src, newID string, size int64) error {
			return driver.Copy(ctx, d, src, d2, newID, size)
		}},
		{"CopyStreamed", "v", d2, func(ctx context.Context, src, newID string, size int64) error {
			return driver.Copy(ctx, hidden{d}, src, hidden{d2}, newID, size)
		}},
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			wantKind(t, op.run(ctx, "missing", "n1", size), errs.NotFound)
			wantKind(t, op.run(ctx, op.src, "n2", size-1), errs.Invalid)
			wantKind(t, op.run(ctx, op.src, "../n", size), errs.Invalid)
			wantKind(t, op.run(ctx, op.src, "taken", size), errs.Conflict)
			equal(t, readAll(t, op.dst, "taken"), taken, "existing volume after a refused "+op.name+" onto it")
			if err := op.run(cancelled, op.src, "n3", size); !errors.Is(err, context.Canceled) {
				t.Fatalf("with a cancelled context: %v, want context.Canceled", err)
			}
			for _, id := range []string{"n1", "n2", "n3"} {
				if exists(t, op.dst, id) {
					t.Fatalf("failed %s left volume %s", op.name, id)
				}
			}
		})
	}
}
