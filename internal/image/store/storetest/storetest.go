// Package storetest is the one conformance suite every image-store driver
// runs (file, s3 against a real server, http read-only). It checks the
// store.Driver contract: round trips at sizes around buffer and multipart
// boundaries, ranged reads, NotFound, overwrites, and above all that a Put
// which fails (reader error, ctx cancellation) leaves no object behind.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
)

// MiB is a mebibyte.
const MiB = 1 << 20

// Options describe what the driver under test can do.
type Options struct {
	// ReadOnly drivers must refuse Put and Delete with errs.Gone; the
	// read tests then use Seed to create objects out of band.
	ReadOnly bool
	// Seed stores data under key behind the driver's back (read-only
	// drivers only).
	Seed func(t *testing.T, key string, data []byte)
	// Leftovers, when set, returns backend artifacts of unfinished writes
	// (temp files, incomplete multipart uploads) whose name mentions key;
	// after a failed Put it must return none.
	Leftovers func(t *testing.T, key string) []string
	// ExtraSizes are driver-specific boundary sizes (its part size +-1)
	// added to the round-trip table.
	ExtraSizes []int
}

var keySeq atomic.Int64

// Key returns a key unique within the test binary, so drivers whose
// backend is shared between subtests (one bucket) never see collisions.
func Key(t *testing.T) string {
	return fmt.Sprintf("st-%08x-%d", rand.Uint32(), keySeq.Add(1))
}

// Data returns size deterministic pseudo-random bytes; different seeds give
// different contents, so an overwrite or a wrong offset is noticed.
func Data(size int, seed uint64) []byte {
	b := make([]byte, size)
	var s [32]byte
	for i := range 4 {
		s[i] = byte(seed >> (8 * i))
	}
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// Run runs the conformance suite; newDriver returns the driver under test
// (it may return the same driver every time).
func Run(t *testing.T, newDriver func(t *testing.T) store.Driver, opts Options) {
	if opts.ReadOnly {
		if opts.Seed == nil {
			t.Fatal("storetest: read-only drivers need Options.Seed")
		}
		t.Run("ReadOnly", func(t *testing.T) { testReadOnly(t, newDriver(t)) })
	}
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newDriver, opts) })
	t.Run("ZeroRuns", func(t *testing.T) { testZeroRuns(t, newDriver, opts) })
	t.Run("GetRange", func(t *testing.T) { testGetRange(t, newDriver(t), opts) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newDriver(t), opts) })
	if opts.ReadOnly {
		return
	}
	t.Run("Overwrite", func(t *testing.T) { testOverwrite(t, newDriver(t)) })
	t.Run("FailedPut", func(t *testing.T) { testFailedPut(t, newDriver, opts) })
	t.Run("CanceledPut", func(t *testing.T) { testCanceledPut(t, newDriver, opts) })
	t.Run("FailedOverwriteKeepsOld", func(t *testing.T) { testFailedOverwrite(t, newDriver(t)) })
	t.Run("ConcurrentPuts", func(t *testing.T) { testConcurrent(t, newDriver(t)) })
	t.Run("List", func(t *testing.T) { testList(t, newDriver(t)) })
	t.Run("BoundedMemory", func(t *testing.T) { testBoundedMemory(t, newDriver(t)) })
}

// put stores data under key through the driver, or through Seed for
// read-only drivers.
func put(t *testing.T, d store.Driver, opts Options, key string, data []byte) {
	t.Helper()
	if opts.ReadOnly {
		opts.Seed(t, key, data)
		return
	}
	n, err := d.Put(context.Background(), key, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Put(%s, %d bytes): %v", key, len(data), err)
	}
	if n != int64(len(data)) {
		t.Fatalf("Put(%s) = %d bytes, want %d", key, n, len(data))
	}
}

func get(t *testing.T, d store.Driver, key string, offset, length int64) []byte {
	t.Helper()
	rc, err := d.Get(context.Background(), key, offset, length)
	if err != nil {
		t.Fatalf("Get(%s, %d, %d): %v", key, offset, length, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%s, %d, %d): read: %v", key, offset, length, err)
	}
	return b
}

// assertSame compares without dumping megabytes into the log.
func assertSame(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Fatalf("%s: got %d bytes, want %d; first difference at byte %d", what, len(got), len(want), i)
}

func assertKind(t *testing.T, what string, err error, kind errs.Kind) {
	t.Helper()
	if !errs.Is(err, kind) {
		t.Fatalf("%s: err = %v (kind %v), want kind %v", what, err, errs.KindOf(err), kind)
	}
}

// getErr is the error of Get; it closes what Get opened.
func getErr(d store.Driver, key string, offset, length int64) error {
	rc, err := d.Get(context.Background(), key, offset, length)
	if err == nil {
		rc.Close()
	}
	return err
}

// assertAbsent checks that key has no object (never put, deleted, or its
// Put failed): Size and Get say NotFound, List does not show it and the
// backend keeps no unfinished upload.
func assertAbsent(t *testing.T, d store.Driver, opts Options, key string) {
	t.Helper()
	_, err := d.Size(context.Background(), key)
	assertKind(t, "Size of an absent key", err, errs.NotFound)
	assertKind(t, "Get of an absent key", getErr(d, key, 0, -1), errs.NotFound)
	if l, ok := d.(store.Lister); ok {
		if listed(t, l, key) {
			t.Fatalf("List shows absent key %s", key)
		}
	}
	if opts.Leftovers != nil {
		if left := opts.Leftovers(t, key); len(left) > 0 {
			t.Fatalf("absent key %s left %v behind", key, left)
		}
	}
}

func listed(t *testing.T, l store.Lister, key string) bool {
	t.Helper()
	found := false
	err := l.List(context.Background(), func(k string) error {
		if k == key {
			found = true
		}
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return found
}

func testRoundTrip(t *testing.T, newDriver func(t *testing.T) store.Driver, opts Options) {
	sizes := []int{0, 1, 4095, 32*1024 + 1, MiB - 1, MiB, MiB + 1, 5*MiB - 1, 5 * MiB, 5*MiB + 1, 17 * MiB}
	sizes = append(sizes, opts.ExtraSizes...)
	slices.Sort(sizes)
	sizes = slices.Compact(sizes)
	for i, size := range sizes {
		t.Run(fmt.Sprintf("size=%d", size), func(t *testing.T) {
			d := newDriver(t)
			ctx := context.Background()
			key := Key(t)
			data := Data(size, uint64(i+1))
			put(t, d, opts, key, data)
			got, err := d.Size(ctx, key)
			if err != nil || got != int64(size) {
				t.Fatalf("Size = %d, %v; want %d", got, err, size)
			}
			assertSame(t, "Get", get(t, d, key, 0, -1), data)
			if opts.ReadOnly {
				return
			}
			if l, ok := d.(store.Lister); ok && !listed(t, l, key) {
				t.Fatalf("List does not show %s", key)
			}
			if err := d.Delete(ctx, key); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			assertAbsent(t, d, opts, key)
		})
	}
}

func testGetRange(t *testing.T, d store.Driver, opts Options) {
	const size = MiB + 3
	key := Key(t)
	data := Data(size, 42)
	put(t, d, opts, key, data)
	cases := []struct {
		name           string
		offset, length int64
		want           []byte
	}{
		{"whole", 0, -1, data},
		{"whole with length", 0, size, data},
		{"head", 0, 10, data[:10]},
		{"middle", 4097, 70000, data[4097 : 4097+70000]},
		{"tail to end", size - 7, -1, data[size-7:]},
		{"length past end is clipped", size - 5, 100, data[size-5:]},
		{"last byte", size - 1, 1, data[size-1:]},
		{"at end", size, -1, nil},
		{"zero length", 100, 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assertSame(t, "Get", get(t, d, key, c.offset, c.length), c.want)
		})
	}
	t.Run("offset past end", func(t *testing.T) {
		assertKind(t, "Get past end", getErr(d, key, size+1, -1), errs.BadRange)
	})
}

func testNotFound(t *testing.T, d store.Driver, opts Options) {
	key := Key(t)
	assertAbsent(t, d, opts, key)
	assertKind(t, "Get range", getErr(d, key, 10, 5), errs.NotFound)
	if !opts.ReadOnly {
		assertKind(t, "Delete", d.Delete(context.Background(), key), errs.NotFound)
	}
}

func testOverwrite(t *testing.T, d store.Driver) {
	ctx := context.Background()
	key := Key(t)
	first, second := Data(300*1024, 1), Data(1000, 2)
	put(t, d, Options{}, key, first)
	put(t, d, Options{}, key, second)
	if n, err := d.Size(ctx, key); err != nil || n != int64(len(second)) {
		t.Fatalf("Size after overwrite = %d, %v; want %d", n, err, len(second))
	}
	assertSame(t, "Get after overwrite", get(t, d, key, 0, -1), second)
	if err := d.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
}

var errBoom = errors.New("storetest: reader failed")

// failingReader yields the bytes of a pattern and then fails with errBoom
// after n bytes (it never returns io.EOF).
type failingReader struct {
	n, off int
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, errBoom
	}
	p = p[:min(len(p), r.n-r.off)]
	for i := range p {
		p[i] = byte(r.off + i)
	}
	r.off += len(p)
	return len(p), nil
}

// failAfters are the points where a Put is broken: before any byte, inside
// the first buffer, past the first 5 MiB (S3 minimum part) so a multipart
// upload has parts to abort.
var failAfters = []int{0, 100, 6*MiB + 17}

func testFailedPut(t *testing.T, newDriver func(t *testing.T) store.Driver, opts Options) {
	for _, after := range failAfters {
		t.Run(fmt.Sprintf("after=%d", after), func(t *testing.T) {
			d := newDriver(t)
			key := Key(t)
			_, err := d.Put(context.Background(), key, &failingReader{n: after})
			if !errors.Is(err, errBoom) {
				t.Fatalf("Put from failing reader: err = %v, want the reader's error", err)
			}
			assertAbsent(t, d, opts, key)
			// The key is usable afterwards.
			data := Data(1234, 9)
			put(t, d, opts, key, data)
			assertSame(t, "Get after retry", get(t, d, key, 0, -1), data)
			if err := d.Delete(context.Background(), key); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// cancelingReader produces data forever; after n bytes it cancels the
// Put's context. If block is set it then behaves like a stalled client:
// Read waits for the context and returns its error.
type cancelingReader struct {
	ctx    context.Context
	cancel context.CancelFunc
	n, off int
	block  bool
}

func (r *cancelingReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		r.cancel()
		if r.block {
			<-r.ctx.Done()
			return 0, r.ctx.Err()
		}
	}
	p = p[:min(len(p), 64*1024)]
	for i := range p {
		p[i] = byte(r.off + i)
	}
	r.off += len(p)
	return len(p), nil
}

func testCanceledPut(t *testing.T, newDriver func(t *testing.T) store.Driver, opts Options) {
	for _, block := range []bool{false, true} {
		for _, after := range failAfters {
			t.Run(fmt.Sprintf("after=%d/stalled=%v", after, block), func(t *testing.T) {
				d := newDriver(t)
				key := Key(t)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				r := &cancelingReader{ctx: ctx, cancel: cancel, n: after, block: block}
				_, err := d.Put(ctx, key, r)
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("canceled Put: err = %v, want context.Canceled", err)
				}
				assertAbsent(t, d, opts, key)
			})
		}
	}
	t.Run("already canceled", func(t *testing.T) {
		d := newDriver(t)
		key := Key(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := d.Put(ctx, key, bytes.NewReader(Data(10, 1)))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Put with canceled ctx: err = %v, want context.Canceled", err)
		}
		assertAbsent(t, d, opts, key)
	})
}

func testFailedOverwrite(t *testing.T, d store.Driver) {
	key := Key(t)
	old := Data(2000, 5)
	put(t, d, Options{}, key, old)
	if _, err := d.Put(context.Background(), key, &failingReader{n: 6*MiB + 1}); !errors.Is(err, errBoom) {
		t.Fatalf("failing overwrite: err = %v, want the reader's error", err)
	}
	assertSame(t, "Get after failed overwrite", get(t, d, key, 0, -1), old)
	if err := d.Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
}

func testConcurrent(t *testing.T, d store.Driver) {
	const n = 8
	keys := make([]string, n)
	datas := make([][]byte, n)
	for i := range n {
		keys[i] = Key(t)
		// Odd ones cross 5 MiB: concurrent multipart uploads on S3.
		datas[i] = Data(256*1024+i*4099+(i%2)*6*MiB, uint64(100+i))
	}
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if _, err := d.Put(context.Background(), keys[i], bytes.NewReader(datas[i])); err != nil {
				errc <- fmt.Errorf("Put %s: %w", keys[i], err)
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for i := range n {
		assertSame(t, "Get "+keys[i], get(t, d, keys[i], 0, -1), datas[i])
		if err := d.Delete(context.Background(), keys[i]); err != nil {
			t.Fatal(err)
		}
	}
}

func testList(t *testing.T, d store.Driver) {
	l, ok := d.(store.Lister)
	if !ok {
		t.Skip("driver does not implement store.Lister")
	}
	keys := []string{Key(t), Key(t), Key(t)}
	for i, k := range keys {
		put(t, d, Options{}, k, Data(10+i, uint64(i)))
	}
	for _, k := range keys {
		if !listed(t, l, k) {
			t.Fatalf("List does not show %s", k)
		}
	}
	// fn's error stops the listing and is returned.
	stop := errors.New("stop")
	calls := 0
	err := l.List(context.Background(), func(string) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("List with failing fn: err = %v after %d calls, want stop after 1", err, calls)
	}
	for _, k := range keys {
		if err := d.Delete(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
}

func testReadOnly(t *testing.T, d store.Driver) {
	ctx := context.Background()
	if ro, ok := d.(store.ReadOnlyDriver); !ok || !ro.ReadOnly() {
		t.Fatal("read-only driver does not report ReadOnly() == true")
	}
	key := Key(t)
	_, err := d.Put(ctx, key, bytes.NewReader([]byte("x")))
	assertKind(t, "Put", err, errs.Gone)
	assertKind(t, "Delete", d.Delete(ctx, key), errs.Gone)
	_, err = d.Size(ctx, key)
	assertKind(t, "Size after refused Put", err, errs.NotFound)
}

// MaxHeapGrowth is how much the Go heap may grow during a 128 MiB Put:
// drivers stream, so it must not scale with the object (the issue's
// memory target for a whole upload is 64 MiB RSS).
const MaxHeapGrowth = 48 * MiB

// testBoundedMemory uploads 128 MiB while sampling the heap.
func testBoundedMemory(t *testing.T, d store.Driver) {
	const size = 128 * MiB
	key := Key(t)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	peak := base
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	n, err := d.Put(context.Background(), key, NewSource(size))
	close(done)
	<-sampled
	if err != nil || n != size {
		t.Fatalf("Put = %d, %v", n, err)
	}
	growth := int64(peak) - int64(base)
	t.Logf("heap growth during a %d MiB Put: %.1f MiB", size/MiB, float64(growth)/MiB)
	if growth > MaxHeapGrowth {
		t.Errorf("heap grew by %.1f MiB during a %d MiB Put, want <= %d MiB",
			float64(growth)/MiB, size/MiB, MaxHeapGrowth/MiB)
	}
	if err := d.Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
}

// testZeroRuns round-trips objects made of runs of zeros and data, with the
// runs starting and ending on and off block boundaries: drivers that leave
// zeros as holes (thin provisioning) must still return every byte.
func testZeroRuns(t *testing.T, newDriver func(t *testing.T) store.Driver, opts Options) {
	type run struct {
		zero bool
		n    int
	}
	cases := map[string][]run{
		"all zero":           {{true, 5*MiB + 1}},
		"leading zeros":      {{true, 4 * MiB}, {false, 3}},
		"trailing zeros":     {{false, 100}, {true, 6*MiB + 4097}},
		"zeros in between":   {{false, 64<<10 + 1}, {true, 5 * MiB}, {false, 4096}, {true, 128 << 10}, {false, 1}},
		"unaligned islands":  {{true, 4095}, {false, 2}, {true, MiB - 3}, {false, 70000}, {true, 3 * MiB}},
		"zero block at tail": {{false, 4 * MiB}, {true, 65536}},
	}
	i := 0
	for name, runs := range cases {
		i++
		t.Run(name, func(t *testing.T) {
			var data []byte
			for j, r := range runs {
				if r.zero {
					data = append(data, make([]byte, r.n)...)
				} else {
					data = append(data, Data(r.n, uint64(100*i+j))...)
				}
			}
			d := newDriver(t)
			key := Key(t)
			put(t, d, opts, key, data)
			if n, err := d.Size(context.Background(), key); err != nil || n != int64(len(data)) {
				t.Fatalf("Size = %d, %v; want %d", n, err, len(data))
			}
			assertSame(t, "Get", get(t, d, key, 0, -1), data)
			off := int64(len(data) / 3)
			assertSame(t, "Get range", get(t, d, key, off, MiB), data[off:min(int(off)+MiB, len(data))])
		})
	}
}
