//go:build ceph

package rbd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"syscall"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// CreateSnapshot takes RBD snapshot snapshot-<snapshotID> of the volume and
// protects it, so volumes can be cloned from it (as Cinder does).
func (d *Driver) CreateSnapshot(ctx context.Context, volumeID, snapshotID string) error {
	v, name, sname, what, err := d.openSnapVolume(ctx, volumeID, snapshotID, "volume "+volumeID)
	if err != nil {
		return err
	}
	defer v.Close()
	// librbd lets concurrent creates of one name all succeed (the lock
	// owner does the work once), so this process decides which one wins.
	unlock := d.lock(name)
	defer unlock()
	if ok, err := hasSnap(v.img, sname); err != nil {
		return mapErr(err, what)
	} else if ok {
		return errs.E(errs.Conflict, "%s already exists", what)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s, err := v.img.CreateSnapshot(sname)
	if err != nil {
		return mapErr(err, what)
	}
	if err := s.Protect(); err != nil {
		_ = s.Remove()
		return mapErr(err, what)
	}
	if err := ctx.Err(); err != nil {
		_ = s.Unprotect()
		_ = s.Remove()
		return err
	}
	return nil
}

// hasSnap reports whether img has a snapshot called name.
func hasSnap(img *rbd.Image, name string) (bool, error) {
	snaps, err := img.GetSnapshotNames()
	if err != nil {
		return false, err
	}
	for _, s := range snaps {
		if s.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// needSnap returns errs.NotFound when img has no snapshot sname (what
// names it in errors), else ctx's error.
func needSnap(ctx context.Context, img *rbd.Image, sname, what string) error {
	if ok, err := hasSnap(img, sname); err != nil {
		return mapErr(err, what)
	} else if !ok {
		return errs.E(errs.NotFound, "%s not found", what)
	}
	return ctx.Err()
}

// openSnapVolume opens volume volumeID for reading and writing, to act on
// its snapshot snapshotID, with the RBD names of both and the snapshot's
// name in errors (snapWhat). Errors opening the volume name it as openAs.
func (d *Driver) openSnapVolume(ctx context.Context, volumeID, snapshotID, openAs string) (v *volume, name, sname, what string, err error) {
	if name, sname, err = snapNames(volumeID, snapshotID); err != nil {
		return nil, "", "", "", err
	}
	if v, err = d.open(ctx, name, rbd.NoSnapshot, false, openAs); err != nil {
		return nil, "", "", "", err
	}
	return v, name, sname, snapWhat(volumeID, snapshotID), nil
}

// DeleteSnapshot unprotects and removes the snapshot. A snapshot that
// volumes were cloned from (rbd_flatten_volume_from_snapshot = false) is
// busy: errs.Conflict naming them, and it stays (Cinder's SnapshotIsBusy).
func (d *Driver) DeleteSnapshot(ctx context.Context, volumeID, snapshotID string) error {
	// A snapshot whose volume is gone is not found itself.
	v, _, sname, what, err := d.openSnapVolume(ctx, volumeID, snapshotID, snapWhat(volumeID, snapshotID))
	if err != nil {
		return err
	}
	defer v.Close()
	if err := needSnap(ctx, v.img, sname, what); err != nil {
		return err
	}
	// Clones of format 2 do not keep a snapshot from being unprotected or
	// removed (it would go to the trash): look for children first.
	if kids := d.children(v.img, sname); len(kids) > 0 {
		return errs.E(errs.Conflict, "%s is busy: volumes %s depend on it", what, strings.Join(kids, ", "))
	}
	s := v.img.GetSnapshot(sname)
	if err := s.Unprotect(); err != nil && errno(err) != int(syscall.EINVAL) {
		if errno(err) == int(syscall.EBUSY) {
			return errs.E(errs.Conflict, "%s is busy: volumes %s depend on it", what, strings.Join(d.children(v.img, sname), ", "))
		}
		return mapErr(err, what)
	}
	if err := s.Remove(); err != nil {
		return mapErr(err, what)
	}
	return nil
}

// children lists the volumes cloned from snapshot snap of img.
func (d *Driver) children(img *rbd.Image, snap string) []string {
	if err := img.SetSnapshot(snap); err != nil {
		return nil
	}
	defer img.SetSnapshot(rbd.NoSnapshot)
	specs, err := img.ListChildrenAttributes()
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range specs {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(s.ImageName, volPrefix), deletedSuffix))
	}
	return out
}

// OpenSnapshot opens the snapshot read-only.
func (d *Driver) OpenSnapshot(ctx context.Context, volumeID, snapshotID string) (driver.Volume, error) {
	name, sname, err := snapNames(volumeID, snapshotID)
	if err != nil {
		return nil, err
	}
	return d.open(ctx, name, sname, true, snapWhat(volumeID, snapshotID))
}

// cloneDepth is how many clones deep image name is: 0 for an image that is
// no clone. Like Cinder, it follows the parents the driver made
// (.clone_snap and snapshot clones alike).
func (d *Driver) cloneDepth(ioctx *rados.IOContext, name string) int {
	depth := 0
	for depth < 64 {
		img, err := rbd.OpenImageReadOnly(ioctx, name, rbd.NoSnapshot)
		if err != nil {
			return depth
		}
		p, err := img.GetParent()
		img.Close()
		if err != nil || p.Image.ImageName == "" {
			return depth
		}
		if p.Image.PoolName != d.cfg.Pool || p.Image.PoolNamespace != d.namespace {
			// A parent elsewhere (an image of the image store): one more.
			return depth + 1
		}
		depth++
		name = p.Image.ImageName
	}
	return depth
}

// cloneInto makes image newName of sizeBytes as a COW clone of parent@snap
// (same pool and namespace), flattened when flatten is set, and removes it
// again when anything fails or ctx ends before it is complete.
func (d *Driver) cloneInto(ctx context.Context, ioctx *rados.IOContext, parent, snap, newName string, sizeBytes int64, flatten bool, what string) error {
	// A clone keeps its parent's object size (librbd refuses another).
	opts := rbd.NewRbdImageOptions()
	defer opts.Destroy()
	if err := rbd.CloneImage(ioctx, parent, snap, ioctx, newName, opts); err != nil {
		return mapErr(err, what)
	}
	ok := false
	defer func() {
		if !ok {
			_ = rbd.RemoveImage(ioctx, newName)
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	img, err := rbd.OpenImage(ioctx, newName, rbd.NoSnapshot)
	if err != nil {
		return mapErr(err, what)
	}
	defer img.Close()
	size, err := img.GetSize()
	if err != nil {
		return mapErr(err, what)
	}
	if uint64(sizeBytes) > size {
		if err := img.Resize(uint64(sizeBytes)); err != nil {
			return mapErr(err, what)
		}
	}
	if flatten {
		if err := img.Flatten(); err != nil {
			return mapErr(err, what)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ok = true
	return nil
}

// newTarget checks the id and free name of a volume about to be made.
func (d *Driver) newTarget(ioctx *rados.IOContext, newID string) (string, error) {
	newName, err := volName(newID)
	if err != nil {
		return "", err
	}
	if ok, err := exists(ioctx, newName); err != nil {
		return "", mapErr(err, "volume "+newID)
	} else if ok {
		return "", errs.E(errs.Conflict, "volume %s already exists", newID)
	}
	return newName, nil
}

// CreateFromSnapshot clones the snapshot (copy-on-write). With
// rbd_flatten_volume_from_snapshot, or when the chain would be deeper than
// rbd_max_clone_depth, the clone is flattened: independent of the
// snapshot, which can then be deleted. Otherwise the snapshot is busy
// while the volume exists (DeleteSnapshot says so), as with Cinder.
func (d *Driver) CreateFromSnapshot(ctx context.Context, volumeID, snapshotID, newID string, sizeBytes int64) error {
	name, sname, err := snapNames(volumeID, snapshotID)
	if err != nil {
		return err
	}
	snap, err := d.OpenSnapshot(ctx, volumeID, snapshotID)
	if err != nil {
		return err
	}
	snapSize := snap.Size()
	snap.Close()
	ioctx, _ := d.io()
	newName, err := d.newTarget(ioctx, newID)
	if err != nil {
		return err
	}
	if sizeBytes < snapSize {
		return errs.E(errs.Invalid, "new size %d is smaller than snapshot %s (%d bytes)", sizeBytes, snapshotID, snapSize)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	flatten := d.cfg.FlattenFromSnapshot || d.cloneDepth(ioctx, name)+1 > d.cfg.MaxCloneDepth
	return d.cloneInto(ctx, ioctx, name, sname, newName, sizeBytes, flatten, "volume "+newID)
}

// Clone makes volume newID a COW clone of srcID: it snapshots the source
// as volume-<newID>.clone_snap (protected) and clones that, as Cinder's
// create_cloned_volume does. Past rbd_max_clone_depth the clone is
// flattened and the snapshot removed again. The source can be deleted
// while its clones live (it is then kept, hidden, until they go).
func (d *Driver) Clone(ctx context.Context, srcID, newID string, sizeBytes int64) error {
	srcName, err := volName(srcID)
	if err != nil {
		return err
	}
	src, err := d.open(ctx, srcName, rbd.NoSnapshot, false, "volume "+srcID)
	if err != nil {
		return err
	}
	defer src.Close()
	ioctx, _ := d.io()
	newName, err := d.newTarget(ioctx, newID)
	if err != nil {
		return err
	}
	if sizeBytes < src.Size() {
		return errs.E(errs.Invalid, "new size %d is smaller than volume %s (%d bytes)", sizeBytes, srcID, src.Size())
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	cs := newName + cloneSuffix
	s, err := src.img.CreateSnapshot(cs)
	if err != nil {
		return mapErr(err, "volume "+newID)
	}
	dropSnap := func() {
		_ = s.Unprotect()
		_ = s.Remove()
	}
	if err := s.Protect(); err != nil {
		dropSnap()
		return mapErr(err, "volume "+newID)
	}
	flatten := d.cloneDepth(ioctx, srcName)+1 > d.cfg.MaxCloneDepth
	if err := d.cloneInto(ctx, ioctx, srcName, cs, newName, sizeBytes, flatten, "volume "+newID); err != nil {
		dropSnap()
		return err
	}
	if flatten {
		dropSnap()
	}
	return nil
}

// Revert rolls the image back to the snapshot (librbd's rollback) and
// resizes it back to its current size when it was extended since, as
// Cinder's RBD revert_to_snapshot does; the space past the snapshot's size
// then reads as zeros. Once the rollback has begun it runs to the end.
func (d *Driver) Revert(ctx context.Context, volumeID, snapshotID string) error {
	v, _, sname, what, err := d.openSnapVolume(ctx, volumeID, snapshotID, "volume "+volumeID)
	if err != nil {
		return err
	}
	defer v.Close()
	if err := needSnap(ctx, v.img, sname, what); err != nil {
		return err
	}
	if err := v.img.GetSnapshot(sname).Rollback(); err != nil {
		return mapErr(err, what)
	}
	now, err := v.img.GetSize()
	if err != nil {
		return mapErr(err, "volume "+volumeID)
	}
	if int64(now) != v.size {
		// The rollback took the snapshot's size; give the volume its own
		// back (zeros past the snapshot's end).
		if int64(now) < v.size {
			return mapErr(v.img.Resize(uint64(v.size)), "volume "+volumeID)
		}
	}
	return nil
}

// Protocols implements driver.Attacher.
func (d *Driver) Protocols() []string { return []string{"rbd"} }

// InitializeConnection returns connection_info of type rbd in the shape
// Cinder's RBD driver gives os-brick (and Nova's libvirt driver): the
// image as pool/volume-<id>, the monitors' v1 addresses, the cephx user
// (never a key: the host has the keyring or the libvirt secret
// secret_uuid, which is the cluster's fsid when rbd_secret_uuid is unset).
func (d *Driver) InitializeConnection(ctx context.Context, volumeID string, connector map[string]any) (driver.ConnectionInfo, error) {
	v, err := d.Open(ctx, volumeID)
	if err != nil {
		return driver.ConnectionInfo{}, err
	}
	v.Close()
	hosts, ports, err := d.monitors()
	if err != nil {
		return driver.ConnectionInfo{}, err
	}
	secret := d.cfg.SecretUUID
	if secret == "" {
		secret = d.fsid
	}
	name := d.cfg.Pool + "/"
	if d.namespace != "" {
		name += d.namespace + "/"
	}
	var user any
	if d.cfg.User != "" {
		user = d.cfg.User
	}
	return driver.ConnectionInfo{DriverVolumeType: "rbd", Data: map[string]any{
		"name":          name + volPrefix + volumeID,
		"hosts":         hosts,
		"ports":         ports,
		"cluster_name":  d.cfg.Cluster,
		"auth_enabled":  d.cfg.User != "",
		"auth_username": user,
		"secret_type":   "ceph",
		"secret_uuid":   secret,
		"volume_id":     volumeID,
		"discard":       true,
		"access_mode":   "rw",
	}}, nil
}

// TerminateConnection has nothing to undo: RBD exports nothing per host.
func (d *Driver) TerminateConnection(ctx context.Context, volumeID string, connector map[string]any) error {
	return nil
}

// monitors returns the monitors' hosts and (msgr v1) ports from the
// monitor map, as Cinder reads them from `ceph mon dump`.
func (d *Driver) monitors() (hosts, ports []string, err error) {
	if _, err := d.io(); err != nil {
		return nil, nil, err
	}
	out, _, err := d.conn.MonCommand([]byte(`{"prefix":"mon dump","format":"json"}`))
	if err != nil {
		return nil, nil, mapErr(err, "mon dump")
	}
	var m struct {
		Mons []struct {
			Addr string `json:"addr"`
		} `json:"mons"`
	}
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, nil, fmt.Errorf("mon dump: %w", err)
	}
	hosts, ports = []string{}, []string{}
	for _, mon := range m.Mons {
		hp := mon.Addr
		if i := strings.LastIndex(hp, "/"); i >= 0 {
			hp = hp[:i]
		}
		i := strings.LastIndex(hp, ":")
		if i < 0 {
			continue
		}
		hosts = append(hosts, strings.Trim(hp[:i], "[]"))
		ports = append(ports, hp[i+1:])
	}
	if len(hosts) == 0 {
		return nil, nil, errors.New("mon dump lists no monitor address")
	}
	return hosts, ports, nil
}

// ParseLocation splits glance_store's rbd://<fsid>/<pool>/<image>/<snap>
// (each part URL-escaped); ok is false for anything else.
func ParseLocation(loc string) (fsid, pool, image, snap string, ok bool) {
	rest, found := strings.CutPrefix(loc, "rbd://")
	if !found {
		return "", "", "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 {
		return "", "", "", "", false
	}
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil || u == "" {
			return "", "", "", "", false
		}
		parts[i] = u
	}
	return parts[0], parts[1], parts[2], parts[3], true
}

// CloneImage implements driver.ImageCloner as Cinder's RBD clone_image
// does: the first location that is an rbd:// snapshot in this cluster
// (same fsid) which this driver's user can open is cloned copy-on-write
// into volume-<id> and resized to sizeBytes. Locations elsewhere give
// handled=false: the caller copies the data.
func (d *Driver) CloneImage(ctx context.Context, id string, sizeBytes int64, locations []string) (bool, error) {
	if _, err := d.io(); err != nil {
		return false, nil // copying will report the backend's state
	}
	for _, loc := range locations {
		fsid, pool, image, snap, ok := ParseLocation(loc)
		if !ok || fsid != d.fsid {
			continue
		}
		src, err := d.conn.OpenIOContext(pool)
		if err != nil {
			continue
		}
		handled, err := d.cloneFrom(ctx, src, image, snap, id, sizeBytes)
		src.Destroy()
		if handled || err != nil {
			return handled, err
		}
	}
	return false, nil
}

// cloneFrom clones image@snap of the pool src into volume id; handled is
// false when the snapshot cannot be opened (missing, no access) or is
// larger than the volume.
func (d *Driver) cloneFrom(ctx context.Context, src *rados.IOContext, image, snap, id string, sizeBytes int64) (bool, error) {
	ioctx, _ := d.io()
	newName, err := d.newTarget(ioctx, id)
	if err != nil {
		return true, err
	}
	img, err := rbd.OpenImageReadOnly(src, image, snap)
	if err != nil {
		return false, nil
	}
	size, err := img.GetSize()
	img.Close()
	if err != nil || int64(size) > sizeBytes {
		return false, nil
	}
	if err := ctx.Err(); err != nil {
		return true, err
	}
	opts := rbd.NewRbdImageOptions()
	defer opts.Destroy()
	// Format 2 clones need no write access to the parent's pool (the
	// volume user has read-only rbd on images) nor a protected snapshot.
	// The clone keeps the image's object size.
	if err := opts.SetUint64(rbd.ImageOptionCloneFormat, 2); err != nil {
		return true, err
	}
	if err := rbd.CloneImage(src, image, snap, ioctx, newName, opts); err != nil {
		return true, mapErr(err, "volume "+id)
	}
	ok := false
	defer func() {
		if !ok {
			_ = rbd.RemoveImage(ioctx, newName)
		}
	}()
	v, err := rbd.OpenImage(ioctx, newName, rbd.NoSnapshot)
	if err != nil {
		return true, mapErr(err, "volume "+id)
	}
	if uint64(sizeBytes) > size {
		err = v.Resize(uint64(sizeBytes))
	}
	if err == nil && d.cfg.MaxCloneDepth == 0 {
		err = v.Flatten()
	}
	v.Close()
	if err != nil {
		return true, mapErr(err, "volume "+id)
	}
	if err := ctx.Err(); err != nil {
		return true, err
	}
	ok = true
	return true, nil
}
