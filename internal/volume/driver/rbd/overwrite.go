//go:build ceph

package rbd

import (
	"context"
	"errors"
	"io"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

var _ driver.Overwriter = (*Driver)(nil)

// guardSnap is the snapshot Overwrite takes before it writes, to roll back
// to when the write fails. It is neither a user snapshot nor a clone's,
// so one left by a process killed mid-restore keeps the volume from being
// deleted until the next Overwrite of it (the restore's retry) removes it.
const guardSnap = "ashlar-overwrite-guard"

// zeroBlock is the pattern zero runs are written with (write-same of
// zeros, which librbd turns into a zeroing of the range, a clone's
// parent data included, without sending the bytes).
var zeroBlock = make([]byte, 512)

// Overwrite implements driver.Overwriter in place, so the volume keeps its
// snapshots, its clones and its parent: a guard snapshot first, then r's
// non-zero blocks written and its zero runs (and the rest of the volume)
// zeroed, then the guard removed. A failure rolls the volume back to the
// guard: its bytes are as they were.
func (d *Driver) Overwrite(ctx context.Context, id string, r io.Reader) error {
	name, err := volName(id)
	if err != nil {
		return err
	}
	ioctx, err := d.io()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	unlock := d.lock(name)
	defer unlock()
	img, err := rbd.OpenImage(ioctx, name, rbd.NoSnapshot)
	if err != nil {
		return mapErr(err, "volume "+id)
	}
	defer img.Close()
	size, err := img.GetSize()
	if err != nil {
		return mapErr(err, "volume "+id)
	}
	guard := img.GetSnapshot(guardSnap)
	if err := guard.Remove(); err != nil && !errors.Is(err, rbd.ErrNotFound) {
		return mapErr(err, "volume "+id) // a killed restore's guard, left over
	}
	if _, err := img.CreateSnapshot(guardSnap); err != nil {
		return mapErr(err, "volume "+id)
	}
	err = overwrite(ctx, img, int64(size), r)
	if err == nil {
		err = img.Flush()
	}
	if err != nil {
		if rerr := guard.Rollback(); rerr != nil {
			return errors.Join(mapErr(err, "volume "+id), mapErr(rerr, "rolling back volume "+id))
		}
	}
	if rerr := guard.Remove(); rerr != nil && err == nil {
		err = rerr
	}
	if errs.KindOf(err) == errs.TooLarge {
		return err
	}
	return mapErr(err, "volume "+id)
}

// overwrite writes r over img (size bytes): non-zero blocks as data, zero
// runs and the tail past r's end zeroed. More than size bytes is
// errs.TooLarge.
func overwrite(ctx context.Context, img *rbd.Image, size int64, r io.Reader) error {
	buf := make([]byte, chunkSize)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if off+int64(n) > size {
				return errs.E(errs.TooLarge, "source data is larger than the volume (%d bytes)", size)
			}
			if werr := writeOver(img, buf[:n], off); werr != nil {
				return werr
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
		if off == size {
			var one [1]byte
			if m, _ := io.ReadFull(r, one[:]); m > 0 {
				return errs.E(errs.TooLarge, "source data is larger than the volume (%d bytes)", size)
			}
			break
		}
	}
	return zeroRange(img, off, size-off)
}

// writeOver writes p at off: its non-zero blocks as data, its zero blocks
// zeroed (unlike writeNonZero, which relies on a fresh image's zeros).
func writeOver(img *rbd.Image, p []byte, off int64) error {
	start, zero := 0, allZero(p[:min(blockSize, len(p))])
	flush := func(end int) error {
		if zero {
			return zeroRange(img, off+int64(start), int64(end-start))
		}
		_, err := img.WriteAt(p[start:end], off+int64(start))
		return err
	}
	for i := blockSize; i < len(p); i += blockSize {
		z := allZero(p[i:min(i+blockSize, len(p))])
		if z != zero {
			if err := flush(i); err != nil {
				return err
			}
			start, zero = i, z
		}
	}
	return flush(len(p))
}

// zeroRange zeroes n bytes of img at off: a write-same of zeros for the
// whole 512-byte blocks, plain zeros for the rest.
func zeroRange(img *rbd.Image, off, n int64) error {
	if n <= 0 {
		return nil
	}
	whole := n / int64(len(zeroBlock)) * int64(len(zeroBlock))
	// One write-same per object at most: librbd splits large ones anyway,
	// and a bounded call keeps ctx checks and errors close to the data.
	for done := int64(0); done < whole; {
		step := min(whole-done, int64(chunkSize))
		if _, err := img.WriteSame(uint64(off+done), uint64(step), zeroBlock, rados.OpFlagNone); err != nil {
			return err
		}
		done += step
	}
	if rest := n - whole; rest > 0 {
		if _, err := img.WriteAt(make([]byte, rest), off+whole); err != nil {
			return err
		}
	}
	return nil
}
