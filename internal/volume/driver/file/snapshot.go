package file

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// Interface guards.
var (
	_ driver.Copier         = (*Driver)(nil)
	_ driver.SnapshotLister = (*Driver)(nil)
)

// snapPath is the file of snapshot snapshotID of volume volumeID.
func (d *Driver) snapPath(volumeID, snapshotID string) (string, error) {
	if !idRE.MatchString(volumeID) {
		return "", errs.E(errs.Invalid, "invalid volume id %q", volumeID)
	}
	if !idRE.MatchString(snapshotID) {
		return "", errs.E(errs.Invalid, "invalid snapshot id %q", snapshotID)
	}
	return filepath.Join(d.dir, snapPrefix+volumeID+snapSep+snapshotID), nil
}

// CreateSnapshot implements driver.Driver: the snapshot is a file next to
// the volume, a reflink of it or a sparse copy of its data (copyFile). A
// reflink is atomic: writes while it runs are in the snapshot or not, as a
// whole; a sparse copy is not.
func (d *Driver) CreateSnapshot(ctx context.Context, volumeID, snapshotID string) error {
	src, err := d.path(volumeID)
	if err != nil {
		return err
	}
	dst, err := d.snapPath(volumeID, snapshotID)
	if err != nil {
		return err
	}
	return copyTo(ctx, src, "volume "+volumeID, dst, "snapshot "+snapshotID, -1, false)
}

// DeleteSnapshot implements driver.Driver.
func (d *Driver) DeleteSnapshot(ctx context.Context, volumeID, snapshotID string) error {
	p, err := d.snapPath(volumeID, snapshotID)
	if err != nil {
		return err
	}
	return removeFile(p, "snapshot "+snapshotID)
}

// OpenSnapshot implements driver.Driver; the snapshot is a driver.LocalFile.
func (d *Driver) OpenSnapshot(ctx context.Context, volumeID, snapshotID string) (driver.Volume, error) {
	p, err := d.snapPath(volumeID, snapshotID)
	if err != nil {
		return nil, err
	}
	return openFile(p, "snapshot "+snapshotID)
}

// CreateFromSnapshot implements driver.Driver with a reflink or a sparse
// copy of the snapshot file.
func (d *Driver) CreateFromSnapshot(ctx context.Context, volumeID, snapshotID, newID string, sizeBytes int64) error {
	src, err := d.snapPath(volumeID, snapshotID)
	if err != nil {
		return err
	}
	dst, err := d.path(newID)
	if err != nil {
		return err
	}
	return copyTo(ctx, src, "snapshot "+snapshotID, dst, "volume "+newID, sizeBytes, false)
}

// Clone implements driver.Driver with a reflink or a sparse copy of the
// volume file.
func (d *Driver) Clone(ctx context.Context, srcID, newID string, sizeBytes int64) error {
	_, err := d.CopyTo(ctx, srcID, d, newID, sizeBytes)
	return err
}

// CopyTo implements driver.Copier between file backends: a reflink when
// both directories are on one filesystem that shares blocks, else a
// sparse copy of the data (copy_file_range, or read and write across
// filesystems).
func (d *Driver) CopyTo(ctx context.Context, srcID string, dst driver.Driver, dstID string, sizeBytes int64) (bool, error) {
	to, ok := dst.(*Driver)
	if !ok {
		return false, nil
	}
	src, err := d.path(srcID)
	if err != nil {
		return true, err
	}
	target, err := to.path(dstID)
	if err != nil {
		return true, err
	}
	return true, copyTo(ctx, src, "volume "+srcID, target, "volume "+dstID, sizeBytes, false)
}

// Revert implements driver.Driver: a reflink or sparse copy of the
// snapshot, as long as the volume, is renamed over the volume file, so the
// volume is either all old or all reverted, even across a crash.
func (d *Driver) Revert(ctx context.Context, volumeID, snapshotID string) error {
	dst, err := d.path(volumeID)
	if err != nil {
		return err
	}
	src, err := d.snapPath(volumeID, snapshotID)
	if err != nil {
		return err
	}
	st, err := os.Stat(dst)
	if err != nil {
		return mapErr(err, "volume "+volumeID)
	}
	return copyTo(ctx, src, "snapshot "+snapshotID, dst, "volume "+volumeID, st.Size(), true)
}

// copyTo makes the file dst (what dstWhat names) a copy of the file src,
// of size bytes (-1: src's size), through build: it appears complete or
// not at all; with replace it takes the place of the existing dst.
func copyTo(ctx context.Context, src, srcWhat, dst, dstWhat string, size int64, replace bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return mapErr(err, srcWhat)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return mapErr(err, srcWhat)
	}
	switch {
	case size == -1:
		size = st.Size()
	case size < st.Size():
		return errs.E(errs.Invalid, "size %d is smaller than %s (%d bytes)", size, srcWhat, st.Size())
	}
	return build(ctx, dst, dstWhat, replace, func(f *os.File) error { return copyFile(ctx, f, in, size) })
}

// ListSnapshots implements driver.SnapshotLister.
func (d *Driver) ListSnapshots(ctx context.Context) ([]driver.SnapshotRef, error) {
	return d.listSnapshots("")
}

// listSnapshots returns the snapshots of volumeID, or of every volume
// when volumeID is empty.
func (d *Driver) listSnapshots(volumeID string) ([]driver.SnapshotRef, error) {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []driver.SnapshotRef
	for _, e := range ents {
		name, ok := strings.CutPrefix(e.Name(), snapPrefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		vol, snap, ok := strings.Cut(name, snapSep)
		if ok && (volumeID == "" || vol == volumeID) {
			out = append(out, driver.SnapshotRef{VolumeID: vol, SnapshotID: snap})
		}
	}
	return out, nil
}
