package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// Compression algorithms ([backup] backup_compression_algorithm).
const (
	CompressZstd = "zstd"
	CompressNone = "none"
)

// Defaults of Options.
const (
	// DefaultChunkSize is the size of one chunk (one object) of a volume.
	DefaultChunkSize = 4 << 20
	// DefaultWorkers is how many chunks are stored (or fetched and
	// checked) at once.
	DefaultWorkers = 4
	// manifestVersion is the manifest format written when every stored
	// chunk is in the manifest's compression; manifestVersionRaw when
	// some are stored raw (Chunk.Raw), which a reader of version 1 would
	// take for corrupt: it refuses the version instead. Both are read.
	manifestVersion    = 1
	manifestVersionRaw = 2
	// sampleSize and samples are the probe of a chunk's compressibility:
	// that many bytes at evenly spaced places are compressed first, and a
	// chunk whose samples do not shrink by minSaving is stored raw,
	// sparing the compression of data that does not compress (random
	// data, or data already compressed or encrypted).
	sampleSize = 16 << 10
	samples    = 4
	// minSaving is the least a compression must save (1/minSaving of the
	// input) to be worth its cost on restore.
	minSaving = 32
	// cleanupTimeout bounds the removal of a failed backup's objects.
	cleanupTimeout = 2 * time.Minute
)

// ErrCorrupt is the cause of a restore that found a chunk whose bytes do
// not match its checksum (or cannot be decompressed).
var ErrCorrupt = errors.New("backup chunk is corrupt")

// Options tune an Engine; zero fields take the defaults.
type Options struct {
	// ChunkSize is the bytes of volume per chunk (at least 64 KiB).
	ChunkSize int64
	// Compression is CompressZstd (default) or CompressNone.
	Compression string
	// Workers is how many chunks are stored at once; memory use is
	// about (Workers + 2 x CPUs + 2) x ChunkSize.
	Workers int
}

// Engine makes, restores and deletes backups in one Store.
type Engine struct {
	store Store
	o     Options
	enc   *zstd.Encoder
	dec   *zstd.Decoder
	zero  []byte
	bufs  sync.Pool
}

// New returns an engine storing into s.
func New(s Store, o Options) (*Engine, error) {
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.ChunkSize < 64<<10 {
		return nil, errs.E(errs.Invalid, "backup chunk size %d is below 64 KiB", o.ChunkSize)
	}
	if o.Compression == "" {
		o.Compression = CompressZstd
	}
	if o.Compression != CompressZstd && o.Compression != CompressNone {
		return nil, errs.E(errs.Invalid, "unknown backup compression %q (want zstd or none)", o.Compression)
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	e := &Engine{store: s, o: o, zero: make([]byte, 64<<10)}
	var err error
	// EncodeAll and DecodeAll are safe for concurrent use; the fastest
	// level keeps compression off the critical path (incompressible data
	// is detected and stored raw by zstd itself).
	if e.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1)); err != nil {
		return nil, err
	}
	if e.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(o.Workers), zstd.WithDecoderMaxMemory(uint64(2*o.ChunkSize+(1<<20)))); err != nil {
		return nil, err
	}
	e.bufs.New = func() any { b := make([]byte, o.ChunkSize); return &b }
	return e, nil
}

// Store returns the engine's store.
func (e *Engine) Store() Store { return e.store }

// ChunkSize returns the engine's chunk size in bytes.
func (e *Engine) ChunkSize() int64 { return e.o.ChunkSize }

// Chunk is one chunk of a backed-up volume.
type Chunk struct {
	// Offset and Length are the volume's byte range the chunk holds.
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
	// Zero marks a chunk that reads as zeros: nothing is stored.
	Zero bool `json:"zero,omitempty"`
	// SHA256 is the hex checksum of the chunk's raw bytes: what a
	// restore verifies.
	SHA256 string `json:"sha256,omitempty"`
	// XXH64 is a fast hash of the raw bytes (xxHash64, hex), what an
	// incremental backup compares with its parent's to tell an unchanged
	// chunk without computing its sha256: the pass over a volume of
	// which little changed then runs at memory speed.
	XXH64 string `json:"xxh64,omitempty"`
	// Object is the key holding the chunk's (compressed) bytes: under
	// this backup's prefix, or an ancestor's for an unchanged chunk of an
	// incremental backup.
	Object string `json:"object,omitempty"`
	// Stored is the object's size in bytes.
	Stored int64 `json:"stored,omitempty"`
	// Raw marks a chunk stored uncompressed in a manifest whose
	// compression is zstd: it did not compress.
	Raw bool `json:"raw,omitempty"`
}

// Manifest describes one backup: it is stored last, as the object
// "<prefix>manifest", so a backup whose manifest exists is complete.
type Manifest struct {
	Version     int       `json:"version"`
	BackupID    string    `json:"backup_id"`
	VolumeID    string    `json:"volume_id"`
	ParentID    string    `json:"parent_id,omitempty"`
	Container   string    `json:"container"`
	Size        int64     `json:"size"`
	ChunkSize   int64     `json:"chunk_size"`
	Compression string    `json:"compression"`
	CreatedAt   time.Time `json:"created_at"`
	// Meta is the caller's description of the volume (Source.Meta).
	Meta   json.RawMessage `json:"meta,omitempty"`
	Chunks []Chunk         `json:"chunks"`
}

// Source is what Backup backs up.
type Source struct {
	// Volume is the open volume (or snapshot) to read.
	Volume driver.Volume
	// VolumeID names the volume in the manifest.
	VolumeID string
	// Parent, when not nil, makes the backup an incremental one on top
	// of that backup of the same volume.
	Parent *Manifest
	// Meta is kept in the manifest for the restore: the volume service
	// puts the volume's metadata and bootable flag there, so a backup
	// carries them even when its database record is lost.
	Meta json.RawMessage
}

// Objects counts the objects this backup stored itself (Cinder's
// object_count), the manifest included.
func (m *Manifest) Objects() int {
	n := 1
	prefix := Prefix(m.Container, m.BackupID)
	for _, c := range m.Chunks {
		if !c.Zero && strings.HasPrefix(c.Object, prefix) {
			n++
		}
	}
	return n
}

// StoredBytes is the bytes this backup stored itself (its chunks, not its
// ancestors').
func (m *Manifest) StoredBytes() int64 {
	var n int64
	prefix := Prefix(m.Container, m.BackupID)
	for _, c := range m.Chunks {
		if !c.Zero && strings.HasPrefix(c.Object, prefix) {
			n += c.Stored
		}
	}
	return n
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$`)

// ValidName reports whether s may be a container or backup id: it cannot
// escape its place in a key or a directory.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Prefix is the key prefix of backup id's objects in container.
func Prefix(container, id string) string { return container + "/" + id + "/" }

func manifestKey(container, id string) string { return Prefix(container, id) + "manifest" }

// Progress is told how many bytes of the volume were processed; it is
// called from several goroutines at once.
type Progress func(n int64)

// job is one chunk on its way through Backup's pipeline.
type job struct {
	idx  int
	buf  *[]byte // nil for a chunk known to be a hole
	data []byte
	obj  []byte // what to store, once prepared; nil: nothing
}

// Backup stores src as backup id (the name of its objects) in container,
// an incremental one when src.Parent is not nil. Only the
// volume's extents are read: chunks wholly in holes are recorded as zero
// without reading them. On any failure (ctx included) every object this
// backup stored is deleted again, so nothing partial is left; the
// returned error names the cause.
func (e *Engine) Backup(ctx context.Context, container, id string, src Source, progress Progress) (*Manifest, error) {
	if !ValidName(container) || !ValidName(id) {
		return nil, errs.E(errs.Invalid, "invalid backup container %q or id %q", container, id)
	}
	v, parent := src.Volume, src.Parent
	m := &Manifest{Version: manifestVersion, BackupID: id, VolumeID: src.VolumeID, Container: container,
		Size: v.Size(), ChunkSize: e.o.ChunkSize, Compression: e.o.Compression, CreatedAt: time.Now().UTC(), Meta: src.Meta}
	if parent != nil {
		m.ParentID = parent.BackupID
		if parent.ChunkSize != m.ChunkSize {
			parent = nil // chunks do not line up: a full backup under the parent's name
		}
	}
	ext, err := v.Extents(ctx)
	if err != nil {
		return nil, err
	}
	n := int((m.Size + m.ChunkSize - 1) / m.ChunkSize)
	m.Chunks = make([]Chunk, n)
	err = e.run(ctx, v, ext, m, parent, progress)
	if err == nil {
		for _, c := range m.Chunks {
			if c.Raw {
				m.Version = manifestVersionRaw
				break
			}
		}
		var data []byte
		if data, err = json.Marshal(m); err == nil {
			err = e.store.Put(ctx, manifestKey(container, id), data)
		}
	}
	if err != nil {
		if cerr := e.cleanup(context.WithoutCancel(ctx), container, id); cerr != nil {
			err = fmt.Errorf("%w (and removing its objects: %v)", err, cerr)
		}
		return nil, err
	}
	return m, nil
}

// run reads the chunks of v and hands them to preparers that check, hash
// and compress them (one per CPU at most: that work is CPU-bound), which
// hand them to Workers storers: the stores go on, Workers at once, while
// the next chunks are read and prepared. A volume whose reads may run in
// parallel (driver.ParallelReader) is read by the preparers themselves,
// each its own chunks: an incremental backup of a volume that changed
// little is a pass of reading and hashing, and both halve with two
// cores. Any other volume is read in one sequential pass, its read-ahead
// kept whole. The first failure stops the reading and the chunks not
// begun, but does not cut off the Puts under way: a request the client
// gives up on may still complete on the server (an S3 PUT whose body was
// sent is committed), after Backup's cleanup has listed the backup's
// objects, leaving one behind. So they finish or fail on their own (the
// store bounds each request) and, when run returns, no Put of this backup
// is in flight. The caller's ctx still cuts them off.
func (e *Engine) run(ctx context.Context, v driver.Volume, ext []driver.Extent, m *Manifest, parent *Manifest, progress Progress) error {
	stop, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ready := make(chan job)
	var once sync.Once
	var first error
	fail := func(err error) {
		once.Do(func() { first = err; cancel(err) })
	}
	var storers, preparers sync.WaitGroup
	for range e.o.Workers {
		storers.Go(func() {
			for j := range ready {
				if stop.Err() == nil {
					c := &m.Chunks[j.idx]
					if j.obj == nil {
						if progress != nil {
							progress(c.Length)
						}
					} else if err := e.store.Put(ctx, c.Object, j.obj); err != nil {
						fail(err)
					} else if progress != nil {
						progress(c.Length)
					}
				}
				if j.buf != nil {
					e.bufs.Put(j.buf)
				}
			}
		})
	}
	// read reads chunk i, or fails the backup and reports false.
	read := func(i int) (job, bool) {
		j, err := e.readChunk(v, ext, m, i)
		if err != nil {
			fail(err)
		}
		return j, err == nil
	}
	prepare := func(j job) {
		if stop.Err() == nil {
			j.obj = e.prepareChunk(m, parent, j)
		}
		ready <- j // the storer releases its buffer
	}
	n := len(m.Chunks)
	procs := min(e.o.Workers, runtime.GOMAXPROCS(0))
	if _, ok := v.(driver.ParallelReader); ok {
		var next atomic.Int64
		for range procs {
			preparers.Go(func() {
				for i := int(next.Add(1) - 1); i < n && stop.Err() == nil; i = int(next.Add(1) - 1) {
					j, ok := read(i)
					if !ok {
						return
					}
					prepare(j)
				}
			})
		}
	} else {
		jobs := make(chan job, 1)
		for range procs {
			preparers.Go(func() {
				for j := range jobs {
					prepare(j)
				}
			})
		}
		for i := 0; i < n && stop.Err() == nil; i++ {
			j, ok := read(i)
			if !ok {
				break
			}
			jobs <- j
		}
		close(jobs)
	}
	preparers.Wait()
	close(ready)
	storers.Wait()
	if first != nil {
		return first
	}
	return context.Cause(stop)
}

// readChunk records chunk i's range in m and reads it, into a buffer of
// the pool, unless it lies wholly in a hole (job.buf nil). ext is sorted.
func (e *Engine) readChunk(v driver.Volume, ext []driver.Extent, m *Manifest, i int) (job, error) {
	off := int64(i) * m.ChunkSize
	length := min(m.ChunkSize, m.Size-off)
	m.Chunks[i] = Chunk{Offset: off, Length: length}
	j := job{idx: i}
	ei := sort.Search(len(ext), func(k int) bool { return ext[k].Offset+ext[k].Length > off })
	if ei == len(ext) || ext[ei].Offset >= off+length {
		return j, nil
	}
	j.buf = e.bufs.Get().(*[]byte)
	j.data = (*j.buf)[:length]
	if err := readRanges(v, ext[ei:], off, j.data); err != nil {
		e.bufs.Put(j.buf)
		return job{}, fmt.Errorf("reading volume at %d: %w", off, err)
	}
	return j, nil
}

// readRanges fills p, the volume's bytes at off, reading only the parts
// the extents (from the first that may overlap) cover; the rest is zeros.
func readRanges(v driver.Volume, ext []driver.Extent, off int64, p []byte) error {
	end := off + int64(len(p))
	pos := off
	for _, x := range ext {
		if x.Offset >= end {
			break
		}
		s, t := max(x.Offset, off), min(x.Offset+x.Length, end)
		if t <= s {
			continue
		}
		clear(p[pos-off : s-off])
		got, err := v.ReadAt(p[s-off:t-off], s)
		if err == io.EOF && got < int(t-s) {
			clear(p[s-off+int64(got) : t-off])
			err = nil
		}
		if err != nil && err != io.EOF {
			return err
		}
		pos = t
	}
	clear(p[pos-off:])
	return nil
}

// prepareChunk records chunk j in the manifest (zero, unchanged from the
// parent, or to be stored) and returns the object to store under its
// Object, nil when there is none.
func (e *Engine) prepareChunk(m *Manifest, parent *Manifest, j job) []byte {
	c := &m.Chunks[j.idx]
	if j.data == nil || e.isZero(j.data) {
		c.Zero = true
		return nil
	}
	c.XXH64 = strconv.FormatUint(xxhash.Sum64(j.data), 16)
	var p *Chunk
	if parent != nil && j.idx < len(parent.Chunks) {
		p = &parent.Chunks[j.idx]
	}
	if p != nil && !p.Zero && p.Length == c.Length && p.XXH64 == c.XXH64 {
		c.SHA256, c.Object, c.Stored, c.Raw = p.SHA256, p.Object, p.Stored, p.Raw
		return nil
	}
	sum := sha256.Sum256(j.data)
	c.SHA256 = hex.EncodeToString(sum[:])
	if p != nil && !p.Zero && p.Length == c.Length && p.XXH64 == "" && p.SHA256 == c.SHA256 {
		c.Object, c.Stored, c.Raw = p.Object, p.Stored, p.Raw
		return nil
	}
	obj := j.data
	if m.Compression == CompressZstd {
		obj, c.Raw = e.compress(j.data)
	}
	c.Object = fmt.Sprintf("%s%08d", Prefix(m.Container, m.BackupID), j.idx)
	c.Stored = int64(len(obj))
	return obj
}

// compress returns p compressed, or p itself and true when it does not
// compress: its samples do not shrink, or the whole does not by at least
// 1/minSaving.
func (e *Engine) compress(p []byte) ([]byte, bool) {
	if len(p) >= 2*samples*sampleSize {
		buf := make([]byte, 0, sampleSize+sampleSize/8)
		var in, out int
		step := (len(p) - sampleSize) / (samples - 1)
		for i := range samples {
			s := p[i*step : i*step+sampleSize]
			in += len(s)
			out += len(e.enc.EncodeAll(s, buf[:0]))
		}
		if in-out < in/minSaving {
			return p, true
		}
	}
	obj := e.enc.EncodeAll(p, make([]byte, 0, len(p)/2))
	if len(p)-len(obj) < len(p)/minSaving {
		return p, true
	}
	return obj, false
}

// isZero reports whether p is all zero bytes.
func (e *Engine) isZero(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(e.zero))
		if !bytes.Equal(p[:n], e.zero[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}

// cleanup deletes every object under backup id's prefix.
func (e *Engine) cleanup(ctx context.Context, container, id string) error {
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	return e.Delete(ctx, container, id)
}

// Delete removes backup id's objects (its manifest first, so a backup cut
// off while being deleted is not mistaken for a complete one). Its
// ancestors' objects, which it may refer to, are not touched: callers
// delete a backup only once no incremental backup depends on it. A backup
// with no objects left is not an error.
func (e *Engine) Delete(ctx context.Context, container, id string) error {
	if !ValidName(container) || !ValidName(id) {
		return errs.E(errs.Invalid, "invalid backup container %q or id %q", container, id)
	}
	if err := e.store.Delete(ctx, manifestKey(container, id)); err != nil {
		return err
	}
	keys, err := e.store.List(ctx, Prefix(container, id))
	if err != nil {
		return err
	}
	sem := make(chan struct{}, e.o.Workers)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for _, k := range keys {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := e.store.Delete(ctx, k); err != nil {
				mu.Lock()
				first = firstErr(first, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// firstErr returns a unless it is nil, then b.
func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// Manifest loads backup id's manifest; errs.NotFound when the backup is
// not complete in the store.
func (e *Engine) Manifest(ctx context.Context, container, id string) (*Manifest, error) {
	if !ValidName(container) || !ValidName(id) {
		return nil, errs.E(errs.Invalid, "invalid backup container %q or id %q", container, id)
	}
	data, err := e.store.Get(ctx, manifestKey(container, id))
	if err != nil {
		return nil, err
	}
	m := &Manifest{}
	if err := json.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("backup %s: manifest: %w: %v", id, ErrCorrupt, err)
	}
	if m.Version != manifestVersion && m.Version != manifestVersionRaw || m.BackupID != id || m.ChunkSize <= 0 {
		return nil, fmt.Errorf("backup %s: manifest: %w: unexpected version %d or id %q", id, ErrCorrupt, m.Version, m.BackupID)
	}
	return m, nil
}
