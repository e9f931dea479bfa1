package file

import (
	"context"
	"os"
	"syscall"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
)

// Check implements store.Checker: the directory must exist and take a new
// file. The probe is a hidden temp file (swept like any crashed upload's
// if this process dies before removing it).
func (d *Driver) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := os.Stat(d.dir); err != nil {
		if os.IsNotExist(err) {
			return errs.E(errs.Unavailable, "store directory %s does not exist", d.dir)
		}
		return mapErr(err, "store directory is not usable")
	}
	f, err := os.CreateTemp(d.dir, tempPrefix+"check-")
	if err != nil {
		return mapErr(err, "store directory is not usable")
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return mapErr(err, "store directory is not usable")
	}
	return nil
}

// FreeBytes implements store.Spacer: the room left on the directory's
// filesystem for an unprivileged writer.
func (d *Driver) FreeBytes(ctx context.Context) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(d.dir, &st); err != nil {
		return 0, errs.Wrap(errs.Other, err, "statfs of the store directory")
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// Interface guards.
var (
	_ store.Checker = (*Driver)(nil)
	_ store.Spacer  = (*Driver)(nil)
)
