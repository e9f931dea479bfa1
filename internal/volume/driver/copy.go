package driver

import (
	"context"
	"io"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/task"
)

// Copy copies volume srcID of src into dst as the new volume dstID of
// sizeBytes (at least the source's size; the rest reads as zeros), for
// migration and retype between backends. src and dst may be the same
// backend or two of one kind (then a Copier's native copy is used, e.g.
// reflinks between two file backends on one filesystem), or of different
// kinds: then only the source's extents are read and handed to
// dst.CreateFrom, which writes only non-zero blocks, so holes stay holes.
//
// The source is read as it is while Copy runs: callers keep it unchanged
// (the volume service copies volumes that are not attached). Errors are
// those of Driver: errs.NotFound for a missing source, errs.Conflict when
// dstID exists on dst, errs.Invalid when sizeBytes is smaller than the
// source. A failure leaves no dstID volume on dst and the source as it was.
func Copy(ctx context.Context, src Driver, srcID string, dst Driver, dstID string, sizeBytes int64) error {
	if c, ok := src.(Copier); ok {
		if handled, err := c.CopyTo(ctx, srcID, dst, dstID, sizeBytes); handled || err != nil {
			return err
		}
	}
	v, err := src.Open(ctx, srcID)
	if err != nil {
		return err
	}
	defer v.Close()
	if sizeBytes < v.Size() {
		return errs.E(errs.Invalid, "new size %d is smaller than volume %s (%d bytes)", sizeBytes, srcID, v.Size())
	}
	r := NewReader(ctx, v)
	// Work run as a task (a clone, a migration) counts the bytes copied
	// as its progress.
	if t := task.FromContext(ctx); t != nil {
		t.SetTotal(v.Size())
		r = t.Reader(r)
	}
	return dst.CreateFrom(ctx, dstID, sizeBytes, r)
}

// NewReader returns a reader of v's raw bytes. Ranges outside v's extents
// are produced as zeros without reading v; data is read straight into the
// caller's buffer, so memory use is bounded and nothing is staged. Reads
// fail with ctx's error once ctx is done.
func NewReader(ctx context.Context, v Volume) io.Reader {
	ext, err := v.Extents(ctx)
	if err != nil {
		return &errReader{err}
	}
	return &reader{ctx: ctx, vol: v, ext: ext, size: v.Size()}
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

type reader struct {
	ctx  context.Context
	vol  Volume
	ext  []Extent
	size int64
	off  int64
}

func (r *reader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	for len(r.ext) > 0 && r.ext[0].Offset+r.ext[0].Length <= r.off {
		r.ext = r.ext[1:]
	}
	if int64(len(p)) > r.size-r.off {
		p = p[:r.size-r.off]
	}
	if len(r.ext) == 0 || r.off < r.ext[0].Offset {
		// In a hole: zeros up to the next extent.
		holeEnd := r.size
		if len(r.ext) > 0 {
			holeEnd = r.ext[0].Offset
		}
		n := min(int64(len(p)), holeEnd-r.off)
		clear(p[:n])
		r.off += n
		return int(n), nil
	}
	e := r.ext[0]
	n := min(int64(len(p)), e.Offset+e.Length-r.off)
	got, err := r.vol.ReadAt(p[:n], r.off)
	if got < int(n) && err == io.EOF {
		// The volume is shorter than it claims: what is missing reads as zeros.
		clear(p[got:n])
		got, err = int(n), nil
	}
	r.off += int64(got)
	if err != nil && err != io.EOF {
		return got, err
	}
	return got, nil
}
