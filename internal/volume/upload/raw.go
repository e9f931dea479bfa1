// Package upload turns a volume into image data for os-volume_upload_image:
// raw is streamed straight from the volume, qcow2 is produced by a native
// streaming writer whose size is known before the first byte, and the other
// disk formats are converted with qemu-img into a temporary file.
package upload

import (
	"context"
	"io"

	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// Raw returns a reader of the volume's raw bytes. Ranges outside the
// volume's extents are produced as zeros without reading the volume; data
// is read straight into the caller's buffer, so memory use is bounded and
// no temporary file is made. Reads fail with ctx's error once ctx is done.
func Raw(ctx context.Context, vol driver.Volume) io.Reader {
	ext, err := vol.Extents(ctx)
	if err != nil {
		return &errReader{err}
	}
	return &rawReader{ctx: ctx, vol: vol, ext: ext, size: vol.Size()}
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

type rawReader struct {
	ctx  context.Context
	vol  driver.Volume
	ext  []driver.Extent
	size int64
	off  int64
}

func (r *rawReader) Read(p []byte) (int, error) {
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
