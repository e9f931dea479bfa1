// Package backuptest is the conformance suite every backup driver passes:
// the Store contract itself, then the chunk engine's backups, incremental
// backups, restores and failures on top of the driver. Driver tests call
// Run with a constructor for a fresh, empty store.
package backuptest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/backup"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

const (
	kib       = 1 << 10
	chunkSize = 256 * kib
)

// Run runs the suite; newStore returns a fresh store with no objects.
func Run(t *testing.T, newStore func(t *testing.T) backup.Store) {
	t.Helper()
	type storeTest struct {
		name string
		fn   func(t *testing.T, s backup.Store)
	}
	tests := []storeTest{
		{"PutGetRoundTrip", testPutGet},
		{"EmptyObject", testEmptyObject},
		{"Replace", testReplace},
		{"GetMissing", testGetMissing},
		{"DeleteMissing", testDeleteMissing},
		{"ListPrefix", testListPrefix},
		{"CanceledPut", testCanceledPut},
		{"Concurrent", testConcurrent},
		{"CorruptChunkDetected", testCorrupt},
		{"FailedBackupLeavesNothing", testFailedBackup},
		{"DeleteBackup", testDelete},
		{"RawChunks", testRawChunks},
		{"Version1Manifest", testVersion1Manifest},
	}
	// The tests of reading a volume run twice: the engine reads a volume
	// in one sequential pass, or, when its reads may run in parallel
	// (driver.ParallelReader), from several goroutines.
	reading := []struct {
		name string
		fn   func(t *testing.T, s backup.Store, open func(*MemVolume) driver.Volume)
	}{
		{"BackupRestore", testBackupRestore},
		{"ZeroChunksNotStored", testZeroChunks},
		{"HolesNotRead", testHolesNotRead},
		{"Incremental", testIncremental},
		{"ReadErrorLeavesNothing", testReadError},
	}
	for _, tc := range reading {
		tests = append(tests,
			storeTest{tc.name, func(t *testing.T, s backup.Store) { tc.fn(t, s, sequential) }},
			storeTest{tc.name + "ParallelReads", func(t *testing.T, s backup.Store) { tc.fn(t, s, parallel) }})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// sequential and parallel present a MemVolume to the engine as a volume
// read in order or as one whose reads may run in parallel.
func sequential(v *MemVolume) driver.Volume { return v }
func parallel(v *MemVolume) driver.Volume   { return parallelVolume{v} }

// parallelVolume is a MemVolume that implements driver.ParallelReader.
type parallelVolume struct{ *MemVolume }

func (parallelVolume) ReadsInParallel() {}

// Random returns n pseudo-random bytes from seed.
func Random(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// MemVolume is a driver.Volume over a byte slice whose extents are given
// (nil: one extent covering everything). It counts the bytes read.
type MemVolume struct {
	Data []byte
	Ext  []driver.Extent
	Read atomic.Int64
	// Fail, when not nil, is the error of every read that reaches FailAt
	// (a disk failing under the backup).
	Fail   error
	FailAt int64
}

// ReadAt implements driver.Volume.
func (v *MemVolume) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(v.Data)) {
		return 0, io.EOF
	}
	if v.Fail != nil && off+int64(len(p)) > v.FailAt {
		return 0, v.Fail
	}
	n := copy(p, v.Data[off:])
	v.Read.Add(int64(n))
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Close implements driver.Volume.
func (v *MemVolume) Close() error { return nil }

// Size implements driver.Volume.
func (v *MemVolume) Size() int64 { return int64(len(v.Data)) }

// Extents implements driver.Volume.
func (v *MemVolume) Extents(context.Context) ([]driver.Extent, error) {
	if v.Ext == nil {
		return []driver.Extent{{Offset: 0, Length: int64(len(v.Data))}}, nil
	}
	return v.Ext, nil
}

func engine(t *testing.T, s backup.Store) *backup.Engine {
	t.Helper()
	e, err := backup.New(s, backup.Options{ChunkSize: chunkSize, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// mustBackup backs data up with e as backup id of container c (an
// incremental one on parent, when not nil), failing the test on an error.
func mustBackup(t *testing.T, e *backup.Engine, id string, data []byte, parent *backup.Manifest) *backup.Manifest {
	t.Helper()
	return mustBackupOf(t, e, id, &MemVolume{Data: data}, parent)
}

// mustBackupOf is mustBackup of volume v.
func mustBackupOf(t *testing.T, e *backup.Engine, id string, v driver.Volume, parent *backup.Manifest) *backup.Manifest {
	t.Helper()
	m, err := e.Backup(context.Background(), "c", id, backup.Source{Volume: v, VolumeID: "vol", Parent: parent}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// wantRestored fails the test unless m restores (with e) to want; what
// names the backup in the failure.
func wantRestored(t *testing.T, e *backup.Engine, m *backup.Manifest, want []byte, what string) {
	t.Helper()
	got, err := restore(t, e, m)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("restore of %s = %d bytes, %v; want the %d bytes backed up", what, len(got), err, len(want))
	}
}

func restore(t *testing.T, e *backup.Engine, m *backup.Manifest) ([]byte, error) {
	t.Helper()
	r := e.Restore(context.Background(), m)
	defer r.Close()
	return io.ReadAll(r)
}

func testPutGet(t *testing.T, s backup.Store) {
	ctx := context.Background()
	data := Random(300*kib, 1)
	if err := s.Put(ctx, "c/b1/00000001", data); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "c/b1/00000001")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get = %d bytes, %v; want the %d bytes put", len(got), err, len(data))
	}
}

func testEmptyObject(t *testing.T, s backup.Store) {
	ctx := context.Background()
	if err := s.Put(ctx, "c/b/empty", nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "c/b/empty")
	if err != nil || len(got) != 0 {
		t.Fatalf("Get = %q, %v", got, err)
	}
}

func testReplace(t *testing.T, s backup.Store) {
	ctx := context.Background()
	for _, v := range []string{"first", "second"} {
		if err := s.Put(ctx, "c/b/k", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Get(ctx, "c/b/k"); err != nil || string(got) != "second" {
		t.Fatalf("Get = %q, %v; want the second Put", got, err)
	}
}

func testGetMissing(t *testing.T, s backup.Store) {
	if _, err := s.Get(context.Background(), "c/none/x"); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("Get of a missing key: %v, want NotFound", err)
	}
}

func testDeleteMissing(t *testing.T, s backup.Store) {
	ctx := context.Background()
	if err := s.Delete(ctx, "c/none/x"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	if err := s.Put(ctx, "c/b/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for range 2 { // a retried delete succeeds too
		if err := s.Delete(ctx, "c/b/x"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Get(ctx, "c/b/x"); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("Get after Delete: %v", err)
	}
}

func testListPrefix(t *testing.T, s backup.Store) {
	ctx := context.Background()
	keys := []string{"c/b1/1", "c/b1/2", "c/b10/1", "c/b2/1", "d/b1/1"}
	for _, k := range keys {
		if err := s.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.List(ctx, "c/b1/")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"c/b1/1", "c/b1/2"}; !slices.Equal(got, want) {
		t.Fatalf("List(c/b1/) = %v, want %v", got, want)
	}
	if got, err := s.List(ctx, "x/none/"); err != nil || len(got) != 0 {
		t.Fatalf("List of an empty prefix = %v, %v", got, err)
	}
}

func testCanceledPut(t *testing.T, s backup.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Put(ctx, "c/b/canceled", Random(100*kib, 2)); err == nil {
		t.Fatal("Put with a canceled context succeeded")
	}
	if _, err := s.Get(context.Background(), "c/b/canceled"); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("a canceled Put left an object: %v", err)
	}
}

func testConcurrent(t *testing.T, s backup.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			k := fmt.Sprintf("c/conc/%02d", i)
			data := Random(64*kib, uint64(i))
			if err := s.Put(ctx, k, data); err != nil {
				errc <- err
				return
			}
			got, err := s.Get(ctx, k)
			if err == nil && !bytes.Equal(got, data) {
				err = fmt.Errorf("%s read back wrong", k)
			}
			if err != nil {
				errc <- err
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

// volumeData is 10 chunks: random data (which is stored raw) with one
// all-zero chunk, two chunks that compress (7 and 8) and a partial last
// chunk.
func volumeData() []byte {
	data := Random(9*chunkSize+chunkSize/3, 7)
	clear(data[2*chunkSize : 3*chunkSize])
	copy(data[7*chunkSize:9*chunkSize], Compressible(2*chunkSize, 7))
	return data
}

// Compressible returns n bytes of text-like data that compresses well.
func Compressible(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, 0, n+64)
	for len(b) < n {
		b = fmt.Appendf(b, "record %d of volume %d: status=ok size=%d\n", r.IntN(1000), seed, r.IntN(64))
	}
	return b[:n]
}

func testBackupRestore(t *testing.T, s backup.Store, open func(*MemVolume) driver.Volume) {
	e := engine(t, s)
	ctx := context.Background()
	data := volumeData()
	var done atomic.Int64
	m, err := e.Backup(ctx, "c", "full", backup.Source{Volume: open(&MemVolume{Data: data}), VolumeID: "vol"}, func(n int64) { done.Add(n) })
	if err != nil {
		t.Fatal(err)
	}
	if done.Load() != int64(len(data)) {
		t.Errorf("progress counted %d bytes of %d", done.Load(), len(data))
	}
	// The manifest reads back from the store.
	m2, err := e.Manifest(ctx, "c", "full")
	if err != nil || len(m2.Chunks) != 10 || m2.Size != int64(len(data)) {
		t.Fatalf("Manifest = %+v, %v", m2, err)
	}
	wantRestored(t, e, m2, data, "the backup")
	if m.Objects() != 10 { // 9 data chunks + manifest
		t.Errorf("Objects = %d, want 10", m.Objects())
	}
}

func testZeroChunks(t *testing.T, s backup.Store, open func(*MemVolume) driver.Volume) {
	e := engine(t, s)
	ctx := context.Background()
	data := make([]byte, 8*chunkSize)
	copy(data[5*chunkSize:], Random(100, 3))
	m := mustBackupOf(t, e, "zeros", open(&MemVolume{Data: data}), nil)
	keys, err := s.List(ctx, backup.Prefix("c", "zeros"))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 { // one data chunk + manifest
		t.Errorf("stored %d objects (%v) for one non-zero chunk", len(keys), keys)
	}
	for i, c := range m.Chunks {
		if c.Zero != (i != 5) {
			t.Errorf("chunk %d: zero = %v", i, c.Zero)
		}
	}
	wantRestored(t, e, m, data, "the backup")
}

func testHolesNotRead(t *testing.T, s backup.Store, open func(*MemVolume) driver.Volume) {
	e := engine(t, s)
	data := make([]byte, 64*chunkSize)
	copy(data[10*chunkSize+100:], Random(chunkSize, 4))
	v := &MemVolume{Data: data, Ext: []driver.Extent{{Offset: 10 * chunkSize, Length: 2 * chunkSize}}}
	m, err := e.Backup(context.Background(), "c", "holes", backup.Source{Volume: open(v), VolumeID: "vol"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.Read.Load() > 2*chunkSize {
		t.Errorf("read %d bytes of a volume with %d bytes of extents", v.Read.Load(), 2*chunkSize)
	}
	wantRestored(t, e, m, data, "the backup")
}

func testIncremental(t *testing.T, s backup.Store, open func(*MemVolume) driver.Volume) {
	e := engine(t, s)
	ctx := context.Background()
	data := volumeData()
	full := mustBackupOf(t, e, "base", open(&MemVolume{Data: data}), nil)
	changed := slices.Clone(data)
	copy(changed[4*chunkSize+10:], []byte("changed"))
	copy(changed[2*chunkSize:], []byte("no longer zero"))
	inc := mustBackupOf(t, e, "inc", open(&MemVolume{Data: changed}), full)
	keys, err := s.List(ctx, backup.Prefix("c", "inc"))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 { // the two changed chunks + manifest
		t.Errorf("incremental stored %d objects (%v), want 3", len(keys), keys)
	}
	if inc.ParentID != "base" || inc.Objects() != 3 {
		t.Errorf("incremental: parent %q, objects %d", inc.ParentID, inc.Objects())
	}
	wantRestored(t, e, inc, changed, "the incremental")
	// Deleting the incremental leaves its parent whole.
	if err := e.Delete(ctx, "c", "inc"); err != nil {
		t.Fatal(err)
	}
	wantRestored(t, e, full, data, "the parent after deleting its child")
}

func testCorrupt(t *testing.T, s backup.Store) {
	e := engine(t, s)
	ctx := context.Background()
	data := volumeData()
	m := mustBackup(t, e, "corrupt", data, nil)
	var bad int // the chunk damaged
	for _, tc := range []struct {
		name   string
		damage func(obj []byte) []byte
	}{
		{"garbage", func(obj []byte) []byte { return Random(len(obj), 9) }},
		{"truncated", func(obj []byte) []byte { return obj[:len(obj)/2] }},
		{"other-valid-object", func([]byte) []byte {
			// A well-formed object of other data (raw, and zstd):
			// only the checksum tells it apart.
			other, err := backup.New(s, backup.Options{ChunkSize: chunkSize})
			if err != nil {
				t.Fatal(err)
			}
			od := slices.Concat(Random(chunkSize, 99), Compressible(chunkSize, 99))
			om, err := other.Backup(ctx, "c", "other", backup.Source{Volume: &MemVolume{Data: od}, VolumeID: "v"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			o, err := s.Get(ctx, om.Chunks[bad-6].Object)
			if err != nil {
				t.Fatal(err)
			}
			return o
		}},
	} {
		for _, bad = range []int{6, 7} { // a raw chunk, a compressed one
			t.Run(fmt.Sprintf("%s-chunk%d", tc.name, bad), func(t *testing.T) {
				key := m.Chunks[bad].Object
				orig, err := s.Get(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Put(ctx, key, tc.damage(orig)); err != nil {
					t.Fatal(err)
				}
				defer s.Put(ctx, key, orig)
				r := e.Restore(ctx, m)
				defer r.Close()
				// The bytes before the corrupt chunk may be read; the
				// corrupt chunk's are not.
				got, err := io.ReadAll(r)
				if !errors.Is(err, backup.ErrCorrupt) {
					t.Fatalf("restore of a corrupt chunk: %v, want ErrCorrupt", err)
				}
				if len(got) > bad*chunkSize {
					t.Fatalf("restore returned %d bytes, past the corrupt chunk at %d", len(got), bad*chunkSize)
				}
			})
		}
	}
}

// testRawChunks: chunks that do not compress are stored raw, marked so
// (and the manifest's version with them); those that do are stored
// compressed; both restore, and an incremental refers to its parent's
// raw chunks as raw.
func testRawChunks(t *testing.T, s backup.Store) {
	e := engine(t, s)
	ctx := context.Background()
	data := volumeData()
	m := mustBackup(t, e, "mixed", data, nil)
	for i, c := range m.Chunks {
		compressible := i == 7 || i == 8
		switch {
		case c.Zero:
		case compressible && (c.Raw || c.Stored >= c.Length/2):
			t.Errorf("chunk %d (text): raw %v, stored %d of %d; want compressed", i, c.Raw, c.Stored, c.Length)
		case !compressible && (!c.Raw || c.Stored != c.Length):
			t.Errorf("chunk %d (random): raw %v, stored %d of %d; want raw", i, c.Raw, c.Stored, c.Length)
		}
	}
	m2, err := e.Manifest(ctx, "c", "mixed")
	if err != nil {
		t.Fatal(err)
	}
	if m2.Version != 2 || !m2.Chunks[0].Raw || m2.Chunks[7].Raw {
		t.Errorf("manifest read back: version %d, chunk 0 raw %v, chunk 7 raw %v", m2.Version, m2.Chunks[0].Raw, m2.Chunks[7].Raw)
	}
	wantRestored(t, e, m2, data, "the backup")
	changed := slices.Clone(data)
	copy(changed[8*chunkSize+5:], "changed")
	inc := mustBackup(t, e, "mixed-inc", changed, m2)
	if inc.Objects() != 2 || !inc.Chunks[0].Raw || inc.Chunks[0].Object != m2.Chunks[0].Object {
		t.Errorf("incremental: %d objects, chunk 0 raw %v object %q", inc.Objects(), inc.Chunks[0].Raw, inc.Chunks[0].Object)
	}
	wantRestored(t, e, inc, changed, "the incremental")
	// Without compression nothing is marked raw: the manifest says it.
	plain, err := backup.New(s, backup.Options{ChunkSize: chunkSize, Compression: backup.CompressNone})
	if err != nil {
		t.Fatal(err)
	}
	pm := mustBackup(t, plain, "plain", data, nil)
	if pm.Version != 1 || slices.ContainsFunc(pm.Chunks, func(c backup.Chunk) bool { return c.Raw }) {
		t.Errorf("uncompressed backup: version %d, raw chunks %v", pm.Version, pm.Chunks)
	}
}

// testVersion1Manifest: a backup written before chunks could be stored
// raw (manifest version 1, every chunk zstd-compressed, however little it
// shrank) restores, and an incremental on top of it too.
func testVersion1Manifest(t *testing.T, s backup.Store) {
	e := engine(t, s)
	ctx := context.Background()
	data := volumeData()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	// The manifest as the first release wrote it, field for field.
	type v1Chunk struct {
		Offset int64  `json:"offset"`
		Length int64  `json:"length"`
		Zero   bool   `json:"zero,omitempty"`
		SHA256 string `json:"sha256,omitempty"`
		XXH64  string `json:"xxh64,omitempty"`
		Object string `json:"object,omitempty"`
		Stored int64  `json:"stored,omitempty"`
	}
	var chunks []v1Chunk
	for off := 0; off < len(data); off += chunkSize {
		p := data[off:min(off+chunkSize, len(data))]
		c := v1Chunk{Offset: int64(off), Length: int64(len(p))}
		if bytes.Count(p, []byte{0}) == len(p) {
			c.Zero = true
		} else {
			sum := sha256.Sum256(p)
			c.SHA256, c.XXH64 = hex.EncodeToString(sum[:]), strconv.FormatUint(xxhash.Sum64(p), 16)
			c.Object = fmt.Sprintf("%s%08d", backup.Prefix("c", "old"), off/chunkSize)
			obj := enc.EncodeAll(p, nil)
			c.Stored = int64(len(obj))
			if err := s.Put(ctx, c.Object, obj); err != nil {
				t.Fatal(err)
			}
		}
		chunks = append(chunks, c)
	}
	man, err := json.Marshal(map[string]any{"version": 1, "backup_id": "old", "volume_id": "vol", "container": "c",
		"size": len(data), "chunk_size": chunkSize, "compression": "zstd", "created_at": "2026-01-02T03:04:05Z", "chunks": chunks})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, backup.Prefix("c", "old")+"manifest", man); err != nil {
		t.Fatal(err)
	}
	old, err := e.Manifest(ctx, "c", "old")
	if err != nil {
		t.Fatal(err)
	}
	wantRestored(t, e, old, data, "a version 1 backup")
	changed := slices.Clone(data)
	copy(changed[5*chunkSize:], "changed")
	inc := mustBackup(t, e, "old-inc", changed, old)
	if inc.Objects() != 2 {
		t.Errorf("incremental on a version 1 backup stored %d objects, want 2", inc.Objects())
	}
	wantRestored(t, e, inc, changed, "the incremental")
}

// failingStore fails every Put after the first `after`, as a bucket that
// fills up or a server that goes away mid-backup.
type failingStore struct {
	backup.Store
	after int64
	puts  atomic.Int64
	err   error
}

func (f *failingStore) Put(ctx context.Context, key string, data []byte) error {
	if f.puts.Add(1) > f.after {
		return f.err
	}
	return f.Store.Put(ctx, key, data)
}

// cutStore fails the Put of key failing once the Put of key slow is under
// way, and records whether that one was cut off (its ctx canceled) within
// cutWindow, by when a cancellation would have arrived.
type cutStore struct {
	backup.Store
	slow, failing string
	started       chan struct{}
	cut           atomic.Bool
}

const cutWindow = 200 * time.Millisecond

func (c *cutStore) Put(ctx context.Context, key string, data []byte) error {
	switch key {
	case c.slow:
		close(c.started)
		select {
		case <-ctx.Done():
			c.cut.Store(true)
			return ctx.Err()
		case <-time.After(cutWindow):
		}
	case c.failing:
		<-c.started
		return errs.E(errs.Unavailable, "backup storage is unreachable")
	}
	return c.Store.Put(ctx, key, data)
}

// testReadError: a volume that fails to read mid-backup fails the backup
// with the read's error, and nothing it stored is left.
func testReadError(t *testing.T, s backup.Store, open func(*MemVolume) driver.Volume) {
	e := engine(t, s)
	cause := errs.E(errs.Other, "input/output error")
	v := &MemVolume{Data: volumeData(), Fail: cause, FailAt: 5 * chunkSize}
	_, err := e.Backup(context.Background(), "c", "unread", backup.Source{Volume: open(v), VolumeID: "vol"}, nil)
	if !errors.Is(err, cause) {
		t.Fatalf("Backup of a failing volume: %v, want %v", err, cause)
	}
	keys, err := s.List(context.Background(), backup.Prefix("c", "unread"))
	if err != nil || len(keys) != 0 {
		t.Fatalf("a backup that could not read its volume left %v (%v)", keys, err)
	}
}

func testFailedBackup(t *testing.T, s backup.Store) {
	for _, cause := range []error{
		errs.E(errs.TooLarge, "backup storage is full"),
		errs.E(errs.Unavailable, "backup storage is unreachable"),
	} {
		fs := &failingStore{Store: s, after: 4, err: cause}
		e, err := backup.New(fs, backup.Options{ChunkSize: chunkSize, Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Backup(context.Background(), "c", "failed", backup.Source{Volume: &MemVolume{Data: volumeData()}, VolumeID: "vol"}, nil)
		if errs.KindOf(err) != errs.KindOf(cause) {
			t.Fatalf("Backup into a failing store: %v, want %v", err, cause)
		}
		keys, err := s.List(context.Background(), backup.Prefix("c", "failed"))
		if err != nil || len(keys) != 0 {
			t.Fatalf("a failed backup left %v (%v)", keys, err)
		}
	}
	// A failure lets the Puts under way finish rather than cut them off (an
	// S3 PUT the client gives up on may still be committed after the
	// cleanup listed the backup's objects), and the cleanup removes what
	// they stored.
	cs := &cutStore{Store: s, slow: backup.Prefix("c", "cut") + "00000000", failing: backup.Prefix("c", "cut") + "00000001",
		started: make(chan struct{})}
	e, err := backup.New(cs, backup.Options{ChunkSize: chunkSize, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Backup(context.Background(), "c", "cut", backup.Source{Volume: &MemVolume{Data: volumeData()}, VolumeID: "vol"}, nil)
	if errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("Backup whose second chunk fails: %v, want Unavailable", err)
	}
	if cs.cut.Load() {
		t.Fatal("the failure of one chunk cut off the Put of another under way")
	}
	if keys, err := s.List(context.Background(), backup.Prefix("c", "cut")); err != nil || len(keys) != 0 {
		t.Fatalf("a failed backup left %v (%v)", keys, err)
	}
	// A backup cut off by its context leaves nothing either.
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64 // progress is told from several goroutines
	_, err = engine(t, s).Backup(ctx, "c", "canceled", backup.Source{Volume: &MemVolume{Data: volumeData()}, VolumeID: "vol"}, func(int64) {
		if n.Add(1) == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled backup: %v", err)
	}
	if keys, err := s.List(context.Background(), backup.Prefix("c", "canceled")); err != nil || len(keys) != 0 {
		t.Fatalf("a canceled backup left %v (%v)", keys, err)
	}
}

func testDelete(t *testing.T, s backup.Store) {
	e := engine(t, s)
	ctx := context.Background()
	if _, err := e.Backup(ctx, "c", "del", backup.Source{Volume: &MemVolume{Data: volumeData()}, VolumeID: "vol"}, nil); err != nil {
		t.Fatal(err)
	}
	for range 2 { // deleting again is fine (a retried delete)
		if err := e.Delete(ctx, "c", "del"); err != nil {
			t.Fatal(err)
		}
	}
	if keys, err := s.List(ctx, backup.Prefix("c", "del")); err != nil || len(keys) != 0 {
		t.Fatalf("Delete left %v (%v)", keys, err)
	}
	if _, err := e.Manifest(ctx, "c", "del"); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("Manifest of a deleted backup: %v", err)
	}
}
