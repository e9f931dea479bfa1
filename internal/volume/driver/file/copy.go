package file

import (
	"context"
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// copyChunk bounds one copy_file_range call, so a cancelled copy stops
// within a chunk.
const copyChunk = 64 << 20

// readAheadWindow is how much of the source's data the copy asks the
// kernel to read ahead of it (posix_fadvise WILLNEED). A volume's data is
// often many small ranges; copied one after the other, each is read with
// the default read-ahead of its own, one small read at a time.
const readAheadWindow = 64 << 20

// copyFile fills dst, a new empty file, with src's bytes and makes it size
// bytes long (at least src's size; the rest is a hole). Where the
// filesystem shares blocks between files (XFS with reflink=1, btrfs) the
// whole file is reflinked (FICLONE): no data moves, whatever the size.
// Elsewhere only src's data ranges (SEEK_DATA/SEEK_HOLE) are copied, with
// copy_file_range (which may still share blocks, or copy inside the
// kernel or the storage), or with read and write when the two files are
// on filesystems it cannot copy between; holes stay holes either way.
func copyFile(ctx context.Context, dst, src *os.File, size int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	st, err := src.Stat()
	if err != nil {
		return err
	}
	err = unix.IoctlFileClone(int(dst.Fd()), int(src.Fd()))
	if err != nil && !unsupported(err) {
		return err
	}
	if err != nil {
		if err := copyRanges(ctx, dst, src, st.Size()); err != nil {
			return err
		}
	}
	return dst.Truncate(size)
}

// unsupported reports an error of FICLONE or copy_file_range that means
// "not between these two files" (no reflinks on this filesystem, two
// filesystems, an old kernel), not a failure of the copy.
func unsupported(err error) bool {
	for _, e := range []error{unix.EOPNOTSUPP, unix.ENOTSUP, unix.EXDEV, unix.EINVAL, unix.ENOTTY, unix.ENOSYS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// copyRanges copies the data ranges of src's first size bytes into dst at
// the same offsets.
func copyRanges(ctx context.Context, dst, src *os.File, size int64) error {
	ranges, err := dataRanges(ctx, src, size)
	if err != nil {
		return err
	}
	var buf, zero []byte // for read and write, once copy_file_range is refused
	fd := int(src.Fd())
	ahead := &readAhead{ranges: ranges, window: readAheadWindow, advise: func(off, n int64) {
		_ = unix.Fadvise(fd, off, n, unix.FADV_WILLNEED) // advice: a filesystem may ignore it
	}}
	ahead.advance(0)
	for _, r := range ranges {
		for off, end := r.Offset, r.Offset+r.Length; off < end; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(end-off, copyChunk)
			var done int
			if buf == nil {
				roff, woff := off, off
				done, err = unix.CopyFileRange(int(src.Fd()), &roff, int(dst.Fd()), &woff, int(n), 0)
				if err != nil && unsupported(err) {
					buf, zero = make([]byte, chunkSize), make([]byte, blockSize)
					continue
				}
			} else {
				done, err = copyPlain(dst, src, off, n, buf, zero)
			}
			if err != nil {
				return err
			}
			if done == 0 {
				return nil // src ends early: the rest reads as zeros
			}
			off += int64(done)
			ahead.advance(int64(done))
		}
	}
	return nil
}

// copyPlain copies up to n bytes at off from src to dst through buf,
// leaving all-zero blocks as holes, and returns how many it copied (0 at
// src's end).
func copyPlain(dst, src *os.File, off, n int64, buf, zero []byte) (int, error) {
	got, err := src.ReadAt(buf[:min(n, int64(len(buf)))], off)
	if err != nil && err != io.EOF {
		return 0, err
	}
	if err := writeNonZero(dst, buf[:got], off, zero); err != nil {
		return 0, err
	}
	return got, nil
}

// readAhead asks the kernel to read the data ranges of a file ahead of a
// copy that goes through them in order, up to window bytes beyond what the
// copy has done so far.
type readAhead struct {
	ranges []driver.Extent
	window int64
	advise func(off, n int64)
	i      int   // the range the next advice starts in
	next   int64 // and where in it
	lead   int64 // bytes advised and not yet copied
}

// advance notes that the copy has done n more bytes (0 before it starts),
// and advises what keeps the window ahead of it.
func (a *readAhead) advance(n int64) {
	a.lead -= n
	for a.lead < a.window && a.i < len(a.ranges) {
		r := a.ranges[a.i]
		start := max(r.Offset, a.next)
		m := min(r.Offset+r.Length-start, a.window-a.lead)
		a.advise(start, m)
		a.lead += m
		if a.next = start + m; a.next >= r.Offset+r.Length {
			a.i++
		}
	}
}
