// Package drivertest is the conformance suite every volume driver passes:
// driver tests call Run with a constructor for a fresh, empty backend.
package drivertest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

const mib = 1 << 20

// Run runs the conformance suite; newDriver returns a fresh backend with
// no volumes (the copy cases call it twice, for two backends).
func Run(t *testing.T, newDriver func(t *testing.T) driver.Driver) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, d driver.Driver)
	}{
		{"CreateReadsZeros", testCreateReadsZeros},
		{"CreateInvalidSize", testCreateInvalidSize},
		{"CreateExisting", testCreateExisting},
		{"CreateFromRoundTrip", testCreateFromRoundTrip},
		{"CreateFromShortSource", testCreateFromShortSource},
		{"CreateFromTooLarge", testCreateFromTooLarge},
		{"CreateFromFailingSource", testCreateFromFailingSource},
		{"CreateFromCanceled", testCreateFromCanceled},
		{"CreateFromSparse", testCreateFromSparse},
		{"ExtentsCoverData", testExtentsCoverData},
		{"Extend", testExtend},
		{"ExtendShrinkRefused", testExtendShrink},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
		{"Capabilities", testCapabilities},
		{"Concurrent", testConcurrent},
		{"Attach", testAttach},
		{"Overwrite", testOverwrite},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDriver(t)) })
	}
	for _, tc := range snapshotTests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDriver) })
	}
}

// readAll reads volume id through Open/ReadAt.
func readAll(t *testing.T, d driver.Driver, id string) []byte {
	t.Helper()
	v, err := d.Open(context.Background(), id)
	if err != nil {
		t.Fatalf("Open(%s): %v", id, err)
	}
	defer v.Close()
	buf := make([]byte, v.Size())
	if _, err := v.ReadAt(buf, 0); err != nil && err != io.EOF {
		t.Fatalf("ReadAt: %v", err)
	}
	return buf
}

// pattern is size bytes of random data with zero runs at the given
// [start,end) ranges.
func pattern(size int, seed uint64, zeros ...[2]int) []byte {
	b := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	for _, z := range zeros {
		clear(b[z[0]:z[1]])
	}
	return b
}

func wantKind(t *testing.T, err error, k errs.Kind) {
	t.Helper()
	if !errs.Is(err, k) {
		t.Fatalf("got error %v (kind %v), want kind %v", err, errs.KindOf(err), k)
	}
}

func exists(t *testing.T, d driver.Driver, id string) bool {
	t.Helper()
	return opens(t, func() (driver.Volume, error) { return d.Open(context.Background(), id) })
}

// opens reports whether open finds its volume (or snapshot): it fails the
// test on errors other than errs.NotFound.
func opens(t *testing.T, open func() (driver.Volume, error)) bool {
	t.Helper()
	v, err := open()
	if err == nil {
		v.Close()
		return true
	}
	wantKind(t, err, errs.NotFound)
	return false
}

func testCreateReadsZeros(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	for _, size := range []int64{1, 4096, 3*mib + 17} {
		id := "zeros-" + string(rune('a'+size%26))
		if err := d.Create(ctx, id, size); err != nil {
			t.Fatalf("Create(%d): %v", size, err)
		}
		got := readAll(t, d, id)
		if int64(len(got)) != size || !bytes.Equal(got, make([]byte, size)) {
			t.Fatalf("size %d: volume does not read as %d zeros", size, size)
		}
		v, _ := d.Open(ctx, id)
		ext, err := v.Extents(ctx)
		v.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ext {
			if e.Offset < 0 || e.Offset+e.Length > size {
				t.Fatalf("extent %+v outside volume of %d", e, size)
			}
		}
	}
}

func testCreateInvalidSize(t *testing.T, d driver.Driver) {
	for _, size := range []int64{0, -1} {
		wantKind(t, d.Create(context.Background(), "bad", size), errs.Invalid)
		if exists(t, d, "bad") {
			t.Fatal("invalid create left a volume")
		}
	}
	wantKind(t, d.Create(context.Background(), "../escape", mib), errs.Invalid)
}

func testCreateExisting(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	data := pattern(mib, 1)
	if err := d.CreateFrom(ctx, "v", mib, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	wantKind(t, d.Create(ctx, "v", 2*mib), errs.Conflict)
	if !bytes.Equal(readAll(t, d, "v"), data) {
		t.Fatal("a refused create changed the existing volume")
	}
}

func testCreateFromRoundTrip(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	cases := []struct {
		name  string
		size  int
		zeros [][2]int
	}{
		{"one-byte", 1, nil},
		{"unaligned", 3*mib + 1234, nil},
		{"zero-runs", 5 * mib, [][2]int{{0, 8192}, {100000, 2 * mib}, {4*mib + 1, 5 * mib}}},
		{"all-zero", 2 * mib, [][2]int{{0, 2 * mib}}},
		{"partial-blocks", 64 * 1024, [][2]int{{1, 4095}, {4097, 12288}}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := pattern(c.size, uint64(i), c.zeros...)
			if err := d.CreateFrom(ctx, c.name, int64(c.size), bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, d, c.name); !bytes.Equal(got, data) {
				t.Fatal("volume data differs from the source")
			}
		})
	}
}

func testCreateFromShortSource(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	data := pattern(mib+5, 2)
	if err := d.CreateFrom(ctx, "short", 4*mib, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Clone(data), make([]byte, 4*mib-len(data))...)
	if !bytes.Equal(readAll(t, d, "short"), want) {
		t.Fatal("a short source must be followed by zeros up to the volume size")
	}
}

func testCreateFromTooLarge(t *testing.T, d driver.Driver) {
	err := d.CreateFrom(context.Background(), "big", mib, bytes.NewReader(pattern(mib+1, 3)))
	wantKind(t, err, errs.TooLarge)
	if exists(t, d, "big") {
		t.Fatal("failed CreateFrom left a volume")
	}
}

type failingReader struct {
	r     io.Reader
	after int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("source broke")
	}
	if len(p) > f.after {
		p = p[:f.after]
	}
	n, err := f.r.Read(p)
	f.after -= n
	return n, err
}

func testCreateFromFailingSource(t *testing.T, d driver.Driver) {
	src := &failingReader{r: bytes.NewReader(pattern(4*mib, 4)), after: 2*mib + 3}
	if err := d.CreateFrom(context.Background(), "broken", 4*mib, src); err == nil {
		t.Fatal("CreateFrom succeeded with a failing source")
	}
	if exists(t, d, "broken") {
		t.Fatal("failed CreateFrom left a volume")
	}
	// The id is free again.
	if err := d.Create(context.Background(), "broken", mib); err != nil {
		t.Fatalf("Create after failed CreateFrom: %v", err)
	}
}

type cancelReader struct {
	r      io.Reader
	cancel func()
	after  int
}

func (c *cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.after -= n
	if c.after <= 0 {
		c.cancel()
	}
	return n, err
}

func testCreateFromCanceled(t *testing.T, d driver.Driver) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := &cancelReader{r: bytes.NewReader(pattern(8*mib, 5)), cancel: cancel, after: mib}
	if err := d.CreateFrom(ctx, "canceled", 8*mib, src); err == nil {
		t.Fatal("CreateFrom succeeded after its context was canceled")
	}
	if exists(t, d, "canceled") {
		t.Fatal("canceled CreateFrom left a volume")
	}
}

// testCreateFromSparse checks that zero blocks are not written: the
// extents (and the allocation, when the driver reports it) cover little
// more than the non-zero data.
func testCreateFromSparse(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	const size = 64 * mib
	data := make([]byte, size)
	// Two 1 MiB islands of data in 64 MiB of zeros.
	copy(data[3*mib:], pattern(mib, 6))
	copy(data[40*mib:], pattern(mib, 7))
	if err := d.CreateFrom(ctx, "sparse", size, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	v, err := d.Open(ctx, "sparse")
	if err != nil {
		t.Fatal(err)
	}
	ext, err := v.Extents(ctx)
	v.Close()
	if err != nil {
		t.Fatal(err)
	}
	var covered int64
	for _, e := range ext {
		covered += e.Length
	}
	if covered > 8*mib {
		t.Errorf("extents cover %d bytes for 2 MiB of data: zeros were written", covered)
	}
	if a, ok := d.(driver.Allocator); ok {
		n, err := a.Allocated(ctx, "sparse")
		if err != nil {
			t.Fatal(err)
		}
		if n > 8*mib {
			t.Errorf("volume allocates %d bytes for 2 MiB of data: zeros were written", n)
		}
	}
	if !bytes.Equal(readAll(t, d, "sparse"), data) {
		t.Fatal("sparse volume reads back wrong")
	}
}

func testExtentsCoverData(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	size := 9*mib + 100
	data := pattern(size, 8, [2]int{0, mib}, [2]int{2 * mib, 6 * mib})
	if err := d.CreateFrom(ctx, "ext", int64(size), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	v, err := d.Open(ctx, "ext")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ext, err := v.Extents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Rebuild the volume from extents only: it must equal the data.
	rebuilt := make([]byte, size)
	var last int64
	for _, e := range ext {
		if e.Offset < last || e.Length <= 0 || e.Offset+e.Length > int64(size) {
			t.Fatalf("extents not ordered, disjoint and inside the volume: %+v", ext)
		}
		if _, err := v.ReadAt(rebuilt[e.Offset:e.Offset+e.Length], e.Offset); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		last = e.Offset + e.Length
	}
	if !bytes.Equal(rebuilt, data) {
		t.Fatal("data outside the reported extents is not zero")
	}
}

func testExtend(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	data := pattern(mib, 9)
	if err := d.CreateFrom(ctx, "grow", mib, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := d.Extend(ctx, "grow", 3*mib); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Clone(data), make([]byte, 2*mib)...)
	if !bytes.Equal(readAll(t, d, "grow"), want) {
		t.Fatal("extended volume must keep its data and read zeros after it")
	}
}

func testExtendShrink(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	if err := d.Create(ctx, "shrink", 2*mib); err != nil {
		t.Fatal(err)
	}
	wantKind(t, d.Extend(ctx, "shrink", mib), errs.Invalid)
}

func testNotFound(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	_, err := d.Open(ctx, "missing")
	wantKind(t, err, errs.NotFound)
	wantKind(t, d.Extend(ctx, "missing", mib), errs.NotFound)
	wantKind(t, d.Delete(ctx, "missing"), errs.NotFound)
}

func testDelete(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	if err := d.Create(ctx, "del", mib); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "del"); err != nil {
		t.Fatal(err)
	}
	if exists(t, d, "del") {
		t.Fatal("deleted volume still opens")
	}
	wantKind(t, d.Delete(ctx, "del"), errs.NotFound)
}

func testCapabilities(t *testing.T, d driver.Driver) {
	c, err := d.Capabilities(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.VolumeBackendName == "" {
		t.Error("VolumeBackendName is empty")
	}
	if c.TotalCapacityGB <= 0 || c.FreeCapacityGB < 0 || c.FreeCapacityGB > c.TotalCapacityGB {
		t.Errorf("implausible capacity: total %v free %v", c.TotalCapacityGB, c.FreeCapacityGB)
	}
}

func testConcurrent(t *testing.T, d driver.Driver) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	datas := make([][]byte, 8)
	for i := range datas {
		datas[i] = pattern(2*mib, uint64(100+i), [2]int{mib / 2, mib})
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- d.CreateFrom(ctx, "c"+string(rune('0'+i)), 2*mib, bytes.NewReader(datas[i]))
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range datas {
		if !bytes.Equal(readAll(t, d, "c"+string(rune('0'+i))), want) {
			t.Fatalf("volume %d differs", i)
		}
	}
}

// testOverwrite covers driver.Overwriter, for drivers that have it: the
// new bytes replace the old, zeros stay holes, and a failing source or a
// source larger than the volume leaves the old bytes.
func testOverwrite(t *testing.T, d driver.Driver) {
	o, ok := d.(driver.Overwriter)
	if !ok {
		t.Skip("driver has no Overwrite")
	}
	ctx := context.Background()
	const size = 8 * mib
	old := pattern(size, 11)
	if err := d.CreateFrom(ctx, "ow", size, bytes.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	// A failing source and an oversized one change nothing.
	bad := io.MultiReader(bytes.NewReader(pattern(mib, 12)), iotestErrReader{})
	if err := o.Overwrite(ctx, "ow", bad); err == nil {
		t.Fatal("Overwrite from a failing source succeeded")
	}
	if err := o.Overwrite(ctx, "ow", bytes.NewReader(make([]byte, size+mib))); errs.KindOf(err) != errs.TooLarge {
		t.Fatalf("Overwrite with too much data: %v, want TooLarge", err)
	}
	if !bytes.Equal(readAll(t, d, "ow"), old) {
		t.Fatal("a failed Overwrite changed the volume")
	}
	// Shorter data: the rest reads as zeros, size unchanged.
	want := make([]byte, size)
	copy(want[mib:], pattern(mib, 13))
	if err := o.Overwrite(ctx, "ow", bytes.NewReader(want[:3*mib])); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, d, "ow"); !bytes.Equal(got, want) {
		t.Fatalf("Overwrite: volume reads back wrong (%d bytes)", len(got))
	}
	if err := o.Overwrite(ctx, "missing", bytes.NewReader(nil)); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("Overwrite of a missing volume: %v, want NotFound", err)
	}
}

// iotestErrReader fails every read.
type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("source failed") }
