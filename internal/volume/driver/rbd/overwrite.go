//go:build ceph

package rbd

import (
	"context"
	"errors"
	"io"

	"github.com/ceph/go-ceph/rbd"

	"github.com/ashlar-dev/ashlar/internal/ceph"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

var _ driver.Overwriter = (*Driver)(nil)

// guardSnap is the snapshot Overwrite takes before it writes, to roll back
// to when the write fails. It is neither a user snapshot nor a clone's,
// so one left by a process killed mid-restore keeps the volume from being
// deleted until the next Overwrite of it (the restore's retry) removes it.
const guardSnap = "ashlar-overwrite-guard"

// Overwrite implements driver.Overwriter in place, so the volume keeps its
// snapshots, its clones and its parent: a guard snapshot first, then r's
// non-zero blocks written and its zero runs (and the rest of the volume)
// zeroed, then the guard removed. A failure rolls the volume back to the
// guard: its bytes are as they were.
func (d *Driver) Overwrite(ctx context.Context, id string, r io.Reader) error {
	name, ioctx, err := d.prepare(ctx, id)
	if err != nil {
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

// overwrite writes r over img (size bytes) with ceph.WriteOver and zeroes
// the rest of the image past r's end. More than size bytes is
// errs.TooLarge.
func overwrite(ctx context.Context, img *rbd.Image, size int64, r io.Reader) error {
	n, err := copyInto(ctx, img, size, r, ceph.WriteOver)
	if err != nil {
		return err
	}
	return ceph.ZeroRange(img, n, size-n)
}
