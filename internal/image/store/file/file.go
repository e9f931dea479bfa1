// Package file is the filesystem image-store driver (Glance's "file" store).
//
// Objects are plain files named by their key directly under
// filesystem_store_datadir (flat, like Glance: <datadir>/<image id>); a key
// containing '/' maps to subdirectories. A Put streams into a hidden temp
// file in the destination directory, fsyncs it, renames it over the key and
// fsyncs the directory, so a reader sees either the whole object or none,
// and a crash never leaves a partial object under a key. Temp files of
// crashed processes are swept when the store is opened: every writer holds
// an flock on its temp file, so a sweep never removes a live upload.
package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
)

// OptDatadir is the [store:<id>] key naming the directory of a file store.
const OptDatadir = "filesystem_store_datadir"

// tempPrefix marks in-progress uploads; keys may not start with '.', so a
// temp file never collides with an object and List skips it.
const tempPrefix = ".ashlar-tmp-"

// bufSize is the copy buffer of a Put: large enough that a slow network
// body is written to disk in few, large syscalls. 4 MiB rather than 1 MiB
// because O_DIRECT writes wait for the disk: at 1 MiB the driver alone
// wrote 936 MB/s, at 4 MiB 1479 MB/s (BenchmarkImageData/driver-put-file).
const bufSize = 4 << 20

var bufPool = sync.Pool{New: func() any { b := alignedBuffer(bufSize); return &b }}

// directAlign is the alignment O_DIRECT needs for buffers, offsets and
// lengths (the largest logical block size in common use).
const directAlign = 4096

// alignedBuffer returns n bytes starting at a directAlign boundary, so that
// full buffers can be written with O_DIRECT.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+directAlign)
	off := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % directAlign); r != 0 {
		off = directAlign - r
	}
	return b[off : off+n : off+n]
}

// OptThin is the [store:<id>] key that turns thin provisioning on (Glance's
// filesystem_thin_provisioning): runs of zeros are not written but left as
// holes, so a mostly-empty disk image costs neither the disk bandwidth nor
// the space of its zeros. Reads see the holes as zeros.
const OptThin = "filesystem_thin_provisioning"

// Driver stores objects as files in one directory.
type Driver struct {
	dir  string
	thin bool
	// buffered (tests only) keeps O_DIRECT off, as on a filesystem
	// without it.
	buffered bool
	// wrapWrite, when set (tests only), wraps the temp file's writer so a
	// test can inject ENOSPC or EROFS at a chosen offset.
	wrapWrite func(io.Writer) io.Writer
}

// Config is a file store's configuration.
type Config struct {
	// Dir is the directory of the objects, created if missing.
	Dir string
	// Thin leaves runs of zeros as holes (OptThin).
	Thin bool
}

// ParseConfig reads a file store's [store:<id>] options; problems are
// recorded in o. The directory defaults to the store's StateDir
// (<state_path>/images/<id>).
func ParseConfig(o *config.Options) Config {
	c := Config{Dir: o.Path(OptDatadir, o.Store.StateDir), Thin: o.Bool(OptThin, false)}
	if c.Dir == "" {
		o.Problem(OptDatadir, "required for a file store")
	}
	return c
}

// Open opens the file store c describes (see New).
func Open(c Config) (*Driver, error) {
	d, err := New(c.Dir)
	if err != nil {
		return nil, err
	}
	d.thin = c.Thin
	return d, nil
}

// SetThin turns thin provisioning on or off for later Puts (tests and
// tools; Open takes it from the store's Config).
func (d *Driver) SetThin(on bool) { d.thin = on }

// Thin reports whether runs of zeros are left as holes.
func (d *Driver) Thin() bool { return d.thin }

// New opens (creating if needed) a file store rooted at dir and removes temp
// files left behind by crashed uploads.
func New(dir string) (*Driver, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "bad store directory")
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, mapErr(err, "cannot create store directory")
	}
	d := &Driver{dir: abs}
	if err := d.sweep(); err != nil {
		return nil, err
	}
	return d, nil
}

// Dir returns the absolute directory of the store.
func (d *Driver) Dir() string { return d.dir }

// Properties implements store.Describer: what GET /v2/info/stores/detail
// shows of a file store.
func (d *Driver) Properties() map[string]any {
	return map[string]any{"data_dir": d.dir, "chunk_size": store.ChunkSize, "thin_provisioning": d.thin}
}

// path returns key's file path. On top of the Store's key checks, keys
// here are '/'-separated printable ASCII without a backslash, with no
// empty, "." or ".." segment and no segment starting with '.', so no key
// escapes the directory or names a temp file.
func (d *Driver) path(key string) (string, error) {
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg[0] == '.' {
			return "", errs.E(errs.Invalid, "invalid store key %q", key)
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; c < 0x21 || c > 0x7e || c == '\\' {
				return "", errs.E(errs.Invalid, "invalid store key %q", key)
			}
		}
	}
	return filepath.Join(d.dir, filepath.FromSlash(key)), nil
}

// Location returns the object's file:// URL (Glance's location form).
func (d *Driver) Location(key string) (string, error) {
	p, err := d.path(key)
	if err != nil {
		return "", err
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(p)}).String(), nil
}

// Put implements the store.Driver method. An existing object at key is replaced
// atomically; if the Put fails, the previous object (if any) is untouched.
func (d *Driver) Put(ctx context.Context, key string, r io.Reader) (n int64, err error) {
	p, err := d.path(key)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	dir := filepath.Dir(p)
	if dir != d.dir {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return 0, mapErr(err, "cannot create store directory")
		}
	}
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return 0, mapErr(err, "cannot write to store")
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	// The lock tells a concurrent sweep (another process opening the same
	// directory) that this temp file is alive; it goes with the fd.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return 0, mapErr(err, "cannot lock temp file")
	}
	fw := newFileWriter(f, d.thin, !d.buffered)
	var w io.Writer = fw
	if d.wrapWrite != nil {
		w = d.wrapWrite(f)
	}
	if w == fw && fw.direct {
		n, err = copyOverlapped(ctx, fw, r)
	} else {
		n, err = copyCtx(ctx, w, r)
	}
	if err != nil {
		return n, err
	}
	if w == fw && fw.thin {
		// the object may end in a hole that no write has reached: give
		// the file its full size
		if err := f.Truncate(n); err != nil {
			return n, mapErr(err, "cannot write to store")
		}
	}
	if err := f.Sync(); err != nil {
		return n, mapErr(err, "cannot write to store")
	}
	if err := f.Close(); err != nil {
		return n, mapErr(err, "cannot write to store")
	}
	if err := ctx.Err(); err != nil {
		return n, err
	}
	if err := os.Rename(tmp, p); err != nil {
		return n, mapErr(err, "cannot write to store")
	}
	// Make the rename durable; a failure here is not worth failing the
	// upload for (the data itself is synced), so it is ignored.
	if df, err := os.Open(dir); err == nil {
		_ = df.Sync()
		_ = df.Close()
	}
	return n, nil
}

// flushEvery is how much written data the kernel is asked to start writing
// back at a time.
const flushEvery = 8 << 20

// flushingWriter writes an object's data with as little CPU as it can,
// since an upload's CPU budget goes to md5 and sha512:
//
// Where the filesystem allows, the file is opened O_DIRECT: copyOverlapped's
// full, aligned buffers go from user memory to the disk without a copy into
// the page cache and without the kernel's writeback work (about 1 CPU-second
// per GiB here), and image data does not evict hotter pages. The last,
// unaligned piece is written after switching O_DIRECT off.
//
// Otherwise (a filesystem without O_DIRECT) writes are buffered, and
// writeback of every flushEvery bytes starts as soon as they are written
// (sync_file_range SYNC_FILE_RANGE_WRITE, which does not wait), so disk
// writes overlap the upload and the final fsync has little left: with a
// source at 400 MB/s a 1 GiB Put's fsync tail drops from ~300 ms to a few
// ms. Those errors are ignored (the final fsync reports real ones; some
// filesystems do not support the call).
//
// With thin provisioning, runs of all-zero thinBlock blocks are skipped
// rather than written, and Put sets the file's size at the end.
type flushingWriter struct {
	f                *os.File
	direct           bool
	thin             bool
	written, flushed int64
}

func newFileWriter(f *os.File, thin, direct bool) *flushingWriter {
	return &flushingWriter{f: f, direct: direct && setDirect(f, true) == nil, thin: thin}
}

// thinBlock is the granularity of thin provisioning: a multiple of
// directAlign, so skipping whole blocks keeps O_DIRECT writes aligned, and
// Glance's chunk size, so a hole here is a hole there.
const thinBlock = 64 << 10

var zeroBlock [thinBlock]byte

// Write writes p, leaving its all-zero blocks as holes when thin.
func (w *flushingWriter) Write(p []byte) (int, error) {
	if !w.thin {
		return w.write(p)
	}
	for n := 0; n < len(p); {
		k, zero := nextRun(p[n:])
		if zero {
			if _, err := w.f.Seek(int64(k), io.SeekCurrent); err != nil {
				return n, err
			}
			w.written += int64(k)
		} else if m, err := w.write(p[n : n+k]); err != nil {
			return n + m, err
		}
		n += k
	}
	return len(p), nil
}

// writeAt writes p at off with pwrite, leaving all-zero blocks unwritten
// when thin; safe for concurrent calls on disjoint ranges.
func (w *flushingWriter) writeAt(p []byte, off int64) error {
	if !w.thin {
		_, err := w.f.WriteAt(p, off)
		return err
	}
	for n := 0; n < len(p); {
		k, zero := nextRun(p[n:])
		if !zero {
			if _, err := w.f.WriteAt(p[n:n+k], off+int64(n)); err != nil {
				return err
			}
		}
		n += k
	}
	return nil
}

// nextRun returns the length of p's leading run of thinBlock blocks that
// are all zero, or all not, and which of the two it is.
func nextRun(p []byte) (int, bool) {
	end := min(thinBlock, len(p))
	zero := isZero(p[:end])
	for end < len(p) && isZero(p[end:min(end+thinBlock, len(p))]) == zero {
		end = min(end+thinBlock, len(p))
	}
	return end, zero
}

// isZero reports whether b is all zeros; random data fails on its first
// bytes, so the check costs nothing where it finds nothing.
func isZero(b []byte) bool { return bytes.Equal(b, zeroBlock[:len(b)]) }

func (w *flushingWriter) write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.written += int64(n)
	if w.written-w.flushed >= flushEvery {
		startWriteback(w.f, w.flushed, w.written-w.flushed)
		w.flushed = w.written
	}
	return n, err
}

// copyCtx copies r to w in bufSize chunks, filling each chunk before it is
// written (few large writes even from a trickling network body) and checking
// ctx between chunks. Reader errors are returned as they are (the caller
// knows whether the client went away); writer errors are mapped to kinds.
func copyCtx(ctx context.Context, w io.Writer, r io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := io.ReadFull(r, buf)
		if m > 0 {
			if _, err := w.Write(buf[:m]); err != nil {
				return n, mapErr(err, "cannot write to store")
			}
			n += int64(m)
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return n, ctx.Err()
		case rerr != nil:
			return n, fmt.Errorf("reading image data: %w", rerr)
		}
	}
}

// writeBuffers is how many bufSize buffers one O_DIRECT Put cycles through:
// the reader fills one while the writer drains the others. Two (double
// buffering) leave the disk idle whenever hashing falls briefly behind and
// hashing idle whenever a write is slow; when the two run at similar speeds
// (a ~300 MB/s virtual disk against ~480 MB/s of md5‖sha512) four let each
// absorb the other's jitter: put-file went from 69 % to 82 % of the driver
// alone (mean of three interleaved runs of BenchmarkImageData), for 8 MiB
// more memory per upload.
const writeBuffers = 4

// copyOverlapped copies r to w's file in writeBuffers aligned buffers with
// O_DIRECT pwrites on a writer goroutine, so that reading (and hashing,
// which the wrapper does inside Read) the next buffers overlaps writing the
// previous ones: O_DIRECT writes wait for the disk, and without the overlap
// every write would stall the upload. The unaligned end of the data, if
// any, is written buffered once the rest is on disk. (Two writer goroutines,
// two writes in flight, were no faster on a virtio disk: put-file at 69-72 %
// of the driver alone against 81-88 % with one, BenchmarkImageData.)
func copyOverlapped(ctx context.Context, w *flushingWriter, r io.Reader) (int64, error) {
	free := make(chan *[]byte, writeBuffers)
	for range writeBuffers {
		bp := bufPool.Get().(*[]byte)
		defer bufPool.Put(bp)
		free <- bp
	}
	type job struct {
		bp  *[]byte
		n   int
		off int64
	}
	jobs := make(chan job, writeBuffers)
	failed := make(chan struct{}) // closed when a write fails
	var werr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for j := range jobs {
			if werr == nil {
				if err := w.writeAt((*j.bp)[:j.n], j.off); err != nil {
					werr = mapErr(err, "cannot write to store")
					close(failed)
				}
			}
			free <- j.bp
		}
	}()
	var tail []byte
	finish := func(n int64, err error) (int64, error) {
		close(jobs)
		<-done
		if werr != nil {
			return n, werr
		}
		if err == nil && len(tail) > 0 {
			// the unaligned end of the data, buffered
			if err := setDirect(w.f, false); err != nil {
				return n, mapErr(err, "cannot write to store")
			}
			if err := w.writeAt(tail, n-int64(len(tail))); err != nil {
				return n, mapErr(err, "cannot write to store")
			}
		}
		return n, err
	}
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return finish(n, err)
		}
		var bp *[]byte
		select {
		case bp = <-free:
		case <-failed:
			return finish(n, nil)
		}
		m, rerr := io.ReadFull(r, *bp)
		if aligned := m &^ (directAlign - 1); aligned > 0 {
			jobs <- job{bp, aligned, n}
		} else {
			free <- bp
		}
		if m%directAlign != 0 {
			tail = (*bp)[m&^(directAlign-1) : m]
		}
		n += int64(m)
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return finish(n, ctx.Err())
		case rerr != nil:
			return finish(n, fmt.Errorf("reading image data: %w", rerr))
		}
	}
}

// Get implements the store.Driver method. Reading past the end yields errs.BadRange;
// an offset equal to the size yields an empty reader.
func (d *Driver) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, mapErr(err, "cannot read from store")
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		_ = f.Close()
		if err == nil {
			return nil, errs.E(errs.NotFound, "no object %q in store", key)
		}
		return nil, mapErr(err, "cannot read from store")
	}
	size := fi.Size()
	if offset > size {
		_ = f.Close()
		return nil, errs.E(errs.BadRange, "offset %d beyond object size %d", offset, size)
	}
	if length < 0 || offset+length > size {
		length = size - offset
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			_ = f.Close()
			return nil, mapErr(err, "cannot read from store")
		}
	}
	return &reader{f: f, lr: &io.LimitedReader{R: f, N: length}}, nil
}

// reader is the body returned by Get. Its WriteTo hands the
// *io.LimitedReader over an *os.File to the destination's ReadFrom, which
// lets net/http send the file with sendfile(2) instead of copying it
// through user space.
type reader struct {
	f  *os.File
	lr *io.LimitedReader
}

func (r *reader) Read(p []byte) (int, error) { return r.lr.Read(p) }

func (r *reader) WriteTo(w io.Writer) (int64, error) {
	if rf, ok := w.(io.ReaderFrom); ok {
		return rf.ReadFrom(r.lr)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return io.CopyBuffer(w, struct{ io.Reader }{r.lr}, *bp)
}

func (r *reader) Close() error { return r.f.Close() }

// Delete implements the store.Driver method.
func (d *Driver) Delete(ctx context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if fi, err := os.Lstat(p); err != nil {
		return mapErr(err, "cannot delete from store")
	} else if !fi.Mode().IsRegular() {
		return errs.E(errs.NotFound, "no object %q in store", key)
	}
	if err := os.Remove(p); err != nil {
		return mapErr(err, "cannot delete from store")
	}
	return nil
}

// Size implements the store.Driver method.
func (d *Driver) Size(ctx context.Context, key string) (int64, error) {
	p, err := d.path(key)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return 0, mapErr(err, "cannot read from store")
	}
	if !fi.Mode().IsRegular() {
		return 0, errs.E(errs.NotFound, "no object %q in store", key)
	}
	return fi.Size(), nil
}

// List implements store.Lister: every object key, in lexical order per
// directory; temp files of uploads in progress are not objects.
func (d *Driver) List(ctx context.Context, fn func(key string) error) error {
	return filepath.WalkDir(d.dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return mapErr(err, "cannot list store")
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == d.dir {
			return nil
		}
		if strings.HasPrefix(e.Name(), ".") {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(d.dir, p)
		if err != nil {
			return err
		}
		return fn(filepath.ToSlash(rel))
	})
}

// sweep removes temp files nobody holds a lock on: leftovers of a process
// that died mid-upload.
func (d *Driver) sweep() error {
	return filepath.WalkDir(d.dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return mapErr(err, "cannot scan store directory")
		}
		if e.IsDir() || !strings.HasPrefix(e.Name(), tempPrefix) {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			_ = os.Remove(p)
		}
		return nil
	})
}

// mapErr turns an OS error into the store error contract, the way Glance's
// filesystem store does: no space (ENOSPC, EFBIG, EDQUOT) is "store full"
// (413), a write that the filesystem refuses (EACCES, EPERM, EROFS) is
// "store not writable" (Glance's StorageWriteDenied, 503), a missing file
// is NotFound.
func mapErr(err error, msg string) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return errs.Wrap(errs.NotFound, err, "object not found in store")
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EFBIG), errors.Is(err, syscall.EDQUOT):
		return errs.Wrap(errs.TooLarge, err, "Image storage media is full")
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EROFS):
		return errs.Wrap(errs.Unavailable, err, "Insufficient permissions on image storage media")
	}
	return errs.Wrap(errs.Other, err, msg)
}
