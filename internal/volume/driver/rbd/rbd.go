//go:build ceph

package rbd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"syscall"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"

	"github.com/ashlar-dev/ashlar/internal/ceph"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

const (
	volPrefix   = "volume-"
	snapPrefix  = "snapshot-"
	cloneSuffix = ".clone_snap"
	// deletedSuffix marks a volume deleted while clones still depend on
	// it (Cinder's "silent" volume): hidden, removed with its last clone.
	deletedSuffix = ".deleted"
	// tmpInfix names images being filled (CreateFrom, copies): renamed
	// into place when complete.
	tmpInfix = ".tmp-"
	// objectOrder is 4 MiB RBD objects, Cinder's default rbd_store_chunk_size.
	objectOrder = 22
	chunkSize   = 1 << objectOrder
	gib         = 1 << 30
)

// idRE keeps ids to names with no '.', so the driver's own suffixes
// (.clone_snap, .deleted, .tmp-) never collide with a volume's name.
var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,200}$`)

// Driver is an RBD volume backend: one pool of one cluster.
type Driver struct {
	cfg Config
	// namespace, when set, confines the driver to one RBD namespace of
	// the pool (the tests give each driver a fresh one).
	namespace string

	// locks serializes snapshot creation per image name in this process.
	locks sync.Map // image name -> *sync.Mutex

	mu    sync.Mutex
	conn  *rados.Conn
	ioctx *rados.IOContext
	fsid  string
}

// Interface guards.
var (
	_ driver.Driver         = (*Driver)(nil)
	_ driver.Lister         = (*Driver)(nil)
	_ driver.SnapshotLister = (*Driver)(nil)
	_ driver.Attacher       = (*Driver)(nil)
	_ driver.ImageCloner    = (*Driver)(nil)
	_ driver.Volume         = (*volume)(nil)
	_ io.WriterAt           = (*volume)(nil)
	_ driver.Granular       = (*volume)(nil)
)

// New builds the driver for cfg. It does not contact the cluster: the
// connection is made on first use (and retried after a failure), so a
// cluster that is down at start-up makes operations fail with
// errs.Unavailable rather than the service fail to start.
func New(cfg Config) (*Driver, error) {
	return &Driver{cfg: cfg}, nil
}

// Close shuts the cluster connection down.
func (d *Driver) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ioctx != nil {
		d.ioctx.Destroy()
		d.ioctx = nil
	}
	if d.conn != nil {
		d.conn.Shutdown()
		d.conn = nil
	}
}

// lock locks image name's snapshot creation and returns the unlock.
func (d *Driver) lock(name string) func() {
	m, _ := d.locks.LoadOrStore(name, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// io returns the pool's I/O context, connecting first if need be.
func (d *Driver) io() (*rados.IOContext, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ioctx != nil {
		return d.ioctx, nil
	}
	conn, fsid, err := ceph.Connect(d.cfg.Cluster, d.cfg.User, d.cfg.CephConf, d.cfg.ConnectTimeout)
	if err != nil {
		return nil, errs.E(errs.Unavailable, "[backend:%s] %v", d.cfg.Name, err)
	}
	ioctx, err := conn.OpenIOContext(d.cfg.Pool)
	if err != nil {
		conn.Shutdown()
		return nil, errs.E(errs.Unavailable, "[backend:%s] pool %s: %v", d.cfg.Name, d.cfg.Pool, err)
	}
	ioctx.SetNamespace(d.namespace)
	d.conn, d.ioctx, d.fsid = conn, ioctx, fsid
	return ioctx, nil
}

// mapErr gives a librbd error its kind; what names the object.
func mapErr(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, rbd.ErrNotFound) {
		return errs.E(errs.NotFound, "%s not found", what)
	}
	switch errno(err) {
	case int(syscall.ENOENT):
		return errs.E(errs.NotFound, "%s not found", what)
	case int(syscall.EEXIST):
		return errs.E(errs.Conflict, "%s already exists", what)
	case int(syscall.EBUSY), int(syscall.ENOTEMPTY):
		return errs.E(errs.Conflict, "%s is busy", what)
	case int(syscall.ENOSPC), int(syscall.EDQUOT):
		return errs.E(errs.TooLarge, "no space left for %s", what)
	case int(syscall.ETIMEDOUT), int(syscall.ESHUTDOWN), int(syscall.ENOTCONN):
		return errs.E(errs.Unavailable, "%s: ceph cluster unavailable: %v", what, err)
	case int(syscall.EPERM), int(syscall.EACCES):
		return errs.E(errs.Forbidden, "%s: permission denied by the ceph cluster: %v", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func volName(id string) (string, error) {
	if !idRE.MatchString(id) {
		return "", errs.E(errs.Invalid, "invalid volume id %q", id)
	}
	return volPrefix + id, nil
}

func snapName(id string) (string, error) {
	if !idRE.MatchString(id) {
		return "", errs.E(errs.Invalid, "invalid snapshot id %q", id)
	}
	return snapPrefix + id, nil
}

// snapNames are the image name of volume volumeID and the RBD snapshot
// name of its snapshot snapshotID.
func snapNames(volumeID, snapshotID string) (name, sname string, err error) {
	if name, err = volName(volumeID); err != nil {
		return "", "", err
	}
	if sname, err = snapName(snapshotID); err != nil {
		return "", "", err
	}
	return name, sname, nil
}

// snapWhat names a snapshot in errors.
func snapWhat(volumeID, snapshotID string) string {
	return fmt.Sprintf("snapshot %s of volume %s", snapshotID, volumeID)
}

func tmpName(final string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return final + tmpInfix + hex.EncodeToString(b)
}

// prepareCreate checks a new volume's id and size and returns its image
// name and the pool's IO context, unless ctx is done.
func (d *Driver) prepareCreate(ctx context.Context, id string, sizeBytes int64) (string, *rados.IOContext, error) {
	if sizeBytes <= 0 {
		if _, err := volName(id); err != nil {
			return "", nil, err
		}
		return "", nil, errs.E(errs.Invalid, "volume size must be positive, got %d", sizeBytes)
	}
	return d.prepare(ctx, id)
}

// prepare checks volume id and returns its image name and the pool's IO
// context, unless ctx is done: how every operation on a volume starts.
func (d *Driver) prepare(ctx context.Context, id string) (string, *rados.IOContext, error) {
	name, err := volName(id)
	if err != nil {
		return "", nil, err
	}
	ioctx, err := d.io()
	if err != nil {
		return "", nil, err
	}
	return name, ioctx, ctx.Err()
}

// Create makes an empty (thin) image of sizeBytes.
func (d *Driver) Create(ctx context.Context, id string, sizeBytes int64) error {
	name, ioctx, err := d.prepareCreate(ctx, id, sizeBytes)
	if err != nil {
		return err
	}
	if err := createImage(ioctx, name, sizeBytes); err != nil {
		return mapErr(err, "volume "+id)
	}
	if err := ctx.Err(); err != nil {
		_ = rbd.RemoveImage(ioctx, name)
		return err
	}
	return nil
}

func createImage(ioctx *rados.IOContext, name string, size int64) error {
	opts := rbd.NewRbdImageOptions()
	defer opts.Destroy()
	if err := opts.SetUint64(rbd.ImageOptionOrder, objectOrder); err != nil {
		return err
	}
	return rbd.CreateImage(ioctx, name, uint64(size), opts)
}

// exists reports whether image name exists (without opening it).
func exists(ioctx *rados.IOContext, name string) (bool, error) { return ceph.ImageExists(ioctx, name) }

// errno is the errno of a go-ceph error.
func errno(err error) int { return ceph.Errno(err) }

// CreateFrom makes a volume of sizeBytes from r in a temporary image,
// writing only the 4 KiB blocks that are not all zeros, and renames it
// into place when complete.
func (d *Driver) CreateFrom(ctx context.Context, id string, sizeBytes int64, r io.Reader) error {
	if r == nil {
		return errs.E(errs.Invalid, "no source data")
	}
	return d.fill(ctx, id, sizeBytes, func(img *rbd.Image) error { return writeSparse(ctx, img, sizeBytes, r) })
}

// fill makes volume id of sizeBytes: a temporary image that write fills,
// renamed to the volume's name once complete. A failure removes it.
func (d *Driver) fill(ctx context.Context, id string, sizeBytes int64, write func(img *rbd.Image) error) error {
	name, ioctx, err := d.prepareCreate(ctx, id, sizeBytes)
	if err != nil {
		return err
	}
	if ok, err := exists(ioctx, name); err != nil {
		return mapErr(err, "volume "+id)
	} else if ok {
		return errs.E(errs.Conflict, "volume %s already exists", id)
	}
	tmp := tmpName(name)
	if err := createImage(ioctx, tmp, sizeBytes); err != nil {
		return mapErr(err, "volume "+id)
	}
	done := false
	defer func() {
		if !done {
			_ = rbd.RemoveImage(ioctx, tmp)
		}
	}()
	img, err := rbd.OpenImage(ioctx, tmp, rbd.NoSnapshot)
	if err != nil {
		return mapErr(err, "volume "+id)
	}
	err = write(img)
	if err == nil {
		err = img.Flush()
	}
	if cerr := img.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return mapErr(err, "volume "+id)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := rename(ioctx, tmp, name); err != nil {
		return mapErr(err, "volume "+id)
	}
	done = true
	return nil
}

func rename(ioctx *rados.IOContext, from, to string) error {
	return rbd.GetImage(ioctx, from).Rename(to)
}

// writeSparse copies r into img, a new image, at most size bytes,
// skipping all-zero 4 KiB blocks (a fresh image reads zeros there). More
// than size bytes is errs.TooLarge.
func writeSparse(ctx context.Context, img *rbd.Image, size int64, r io.Reader) error {
	_, err := copyInto(ctx, img, size, r, ceph.WriteNonZero)
	return err
}

// copyInto reads r in object-sized chunks and hands each to write (at its
// offset in img), at most size bytes, and returns how many it wrote. More
// than size bytes is errs.TooLarge.
func copyInto(ctx context.Context, img *rbd.Image, size int64, r io.Reader, write func(*rbd.Image, []byte, int64) error) (int64, error) {
	buf := make([]byte, chunkSize)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return off, err
		}
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if off+int64(n) > size {
				return off, errs.E(errs.TooLarge, "source data is larger than the volume (%d bytes)", size)
			}
			if werr := write(img, buf[:n], off); werr != nil {
				return off, werr
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
		if off == size {
			// Full: anything more is too much.
			var one [1]byte
			if m, _ := io.ReadFull(r, one[:]); m > 0 {
				return off, errs.E(errs.TooLarge, "source data is larger than the volume (%d bytes)", size)
			}
			return off, nil
		}
	}
}

// volume is an open image (or snapshot of one).
type volume struct {
	img  *rbd.Image
	size int64

	// Small reads (an HTTP client's buffer at a time) are served from
	// whole objects read ahead: one librbd read per 4 MiB instead of one
	// round trip per 32 KiB.
	mu       sync.Mutex
	ahead    []*window // consecutive objects, ascending
	closed   bool
	inFlight sync.WaitGroup // reads ahead, dropped ones too
}

// window is one object's bytes, being read or read.
type window struct {
	off   int64
	buf   []byte
	err   error
	ready chan struct{}
}

// readAhead is how many objects past the one being read are fetched.
const readAhead = 3

// Open opens volume id for reading and writing.
func (d *Driver) Open(ctx context.Context, id string) (driver.Volume, error) {
	name, err := volName(id)
	if err != nil {
		return nil, err
	}
	return d.open(ctx, name, rbd.NoSnapshot, false, "volume "+id)
}

func (d *Driver) open(ctx context.Context, name, snap string, readOnly bool, what string) (*volume, error) {
	ioctx, err := d.io()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ok, err := exists(ioctx, name); err != nil {
		return nil, mapErr(err, what)
	} else if !ok {
		return nil, errs.E(errs.NotFound, "%s not found", what)
	}
	var img *rbd.Image
	if readOnly {
		img, err = rbd.OpenImageReadOnly(ioctx, name, rbd.NoSnapshot)
	} else {
		img, err = rbd.OpenImage(ioctx, name, rbd.NoSnapshot)
	}
	if err != nil {
		return nil, mapErr(err, what)
	}
	if snap != rbd.NoSnapshot {
		ok, err := hasSnap(img, snap)
		if err == nil && !ok {
			err = rbd.ErrNotFound
		}
		if err == nil {
			err = img.SetSnapshot(snap)
		}
		if err != nil {
			img.Close()
			return nil, mapErr(err, what)
		}
	}
	size, err := img.GetSize()
	if err != nil {
		img.Close()
		return nil, mapErr(err, what)
	}
	return &volume{img: img, size: int64(size)}, nil
}

// ReadAt reads the image; past its end is io.EOF. Reads up to 16 objects
// are served through the read-ahead windows, so the next objects are read
// while the caller works on these (a streaming reader then never waits
// for a round trip); larger ones go to librbd at once.
func (v *volume) ReadAt(p []byte, off int64) (int, error) {
	if off >= v.size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > v.size-off {
		p = p[:v.size-off]
	}
	var n int
	var err error
	if len(p) >= 16*chunkSize {
		n, err = v.img.ReadAt(p, off)
		if err == io.EOF && n == len(p) {
			err = nil
		}
	} else {
		n, err = v.readCached(p, off)
	}
	if err == nil && n < want {
		err = io.EOF
	}
	return n, err
}

// readCached copies [off, off+len(p)) out of the windows, fetching the
// objects it touches and the next readAhead ones.
func (v *volume) readCached(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		w, err := v.window(off + int64(n))
		if err != nil {
			return n, err
		}
		<-w.ready
		if w.err != nil {
			return n, w.err
		}
		c := copy(p[n:], w.buf[off+int64(n)-w.off:])
		if c == 0 {
			return n, io.ErrUnexpectedEOF
		}
		n += c
	}
	return n, nil
}

// window returns the window holding byte at, starting the reads of it and
// of the objects after it; windows before it are dropped.
func (v *volume) window(at int64) (*window, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil, errors.New("rbd volume closed")
	}
	start := at - at%chunkSize
	for len(v.ahead) > 0 && v.ahead[0].off < start {
		v.ahead = v.ahead[1:]
	}
	if len(v.ahead) > 0 && v.ahead[0].off != start {
		v.ahead = nil // a jump backwards or past the windows
	}
	next := start
	if len(v.ahead) > 0 {
		next = v.ahead[len(v.ahead)-1].off + chunkSize
	}
	for len(v.ahead) <= readAhead && next < v.size {
		w := &window{off: next, buf: make([]byte, min(chunkSize, v.size-next)), ready: make(chan struct{})}
		v.ahead = append(v.ahead, w)
		v.inFlight.Add(1)
		go func() {
			defer v.inFlight.Done()
			got, err := v.img.ReadAt(w.buf, w.off)
			if err == io.EOF && got == len(w.buf) {
				err = nil
			}
			w.err = err
			close(w.ready)
		}()
		next += chunkSize
	}
	return v.ahead[0], nil
}

// WriteAt writes the image (volumes opened with Open; not snapshots), as
// an attached instance would. Read-ahead windows are dropped.
func (v *volume) WriteAt(p []byte, off int64) (int, error) {
	v.mu.Lock()
	v.ahead = nil
	v.mu.Unlock()
	n, err := v.img.WriteAt(p, off)
	if err == nil {
		err = v.img.Flush()
	}
	return n, err
}

func (v *volume) Size() int64 { return v.size }

// Close waits for reads ahead still running, then closes the image.
func (v *volume) Close() error {
	v.mu.Lock()
	v.closed = true
	v.ahead = nil
	v.mu.Unlock()
	v.inFlight.Wait()
	return v.img.Close()
}

// Granularity implements driver.Granular: librbd tells which 4 MiB
// objects exist and how far each was written, not where zeros are inside
// one.
func (v *volume) Granularity() int64 { return chunkSize }

// Extents asks librbd which ranges may hold data (the image's own objects
// and its parents'): each object that exists, from its start to where it
// was last written. Objects never written are holes.
func (v *volume) Extents(ctx context.Context) ([]driver.Extent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []driver.Extent
	err := v.img.DiffIterate(rbd.DiffIterateConfig{
		SnapName: rbd.NoSnapshot, Offset: 0, Length: uint64(v.size),
		IncludeParent: rbd.IncludeParent, WholeObject: rbd.DisableWholeObject,
		Callback: func(off, length uint64, exists int, _ interface{}) int {
			if exists == 0 || length == 0 {
				return 0
			}
			if n := len(out); n > 0 && out[n-1].Offset+out[n-1].Length == int64(off) {
				out[n-1].Length += int64(length)
			} else {
				out = append(out, driver.Extent{Offset: int64(off), Length: int64(length)})
			}
			return 0
		},
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Extend resizes the image up; a smaller size is errs.Invalid.
func (d *Driver) Extend(ctx context.Context, id string, newSizeBytes int64) error {
	v, err := d.Open(ctx, id)
	if err != nil {
		return err
	}
	defer v.Close()
	if newSizeBytes < v.Size() {
		return errs.E(errs.Invalid, "new size %d is smaller than volume %s (%d bytes)", newSizeBytes, id, v.Size())
	}
	if newSizeBytes == v.Size() {
		return nil
	}
	return mapErr(v.(*volume).img.Resize(uint64(newSizeBytes)), "volume "+id)
}

// snapInfo is what the driver needs of an image's snapshots.
type snapInfo struct {
	user  []string // snapshot-<id> names
	clone []string // <child>.clone_snap names
	other []string
}

func listSnaps(img *rbd.Image) (snapInfo, error) {
	var s snapInfo
	snaps, err := img.GetSnapshotNames()
	if err != nil {
		return s, err
	}
	for _, sn := range snaps {
		switch {
		case strings.HasSuffix(sn.Name, cloneSuffix):
			s.clone = append(s.clone, sn.Name)
		case strings.HasPrefix(sn.Name, snapPrefix):
			s.user = append(s.user, sn.Name)
		default:
			s.other = append(s.other, sn.Name)
		}
	}
	return s, nil
}

// cloneParent returns the parent image and snapshot of image name when it
// is a clone made by Clone (its parent snapshot is <name>.clone_snap); ""
// otherwise.
func cloneParent(img *rbd.Image, name string) (parent, parentSnap string) {
	p, err := img.GetParent()
	if err != nil {
		return "", ""
	}
	base := strings.TrimSuffix(name, deletedSuffix)
	if p.Snap.SnapName != base+cloneSuffix {
		return "", ""
	}
	return p.Image.ImageName, p.Snap.SnapName
}

// Delete removes volume id. A volume with snapshots is errs.Conflict. A
// volume that clones still depend on (through its .clone_snap snapshots)
// is renamed volume-<id>.deleted, hidden, and removed with its last clone,
// as Cinder's RBD driver does. Deleting a clone releases its parent's
// .clone_snap, and a hidden parent left with nothing is removed in turn.
func (d *Driver) Delete(ctx context.Context, id string) error {
	name, ioctx, err := d.prepare(ctx, id)
	if err != nil {
		return err
	}
	v, err := d.open(ctx, name, rbd.NoSnapshot, false, "volume "+id)
	if err != nil {
		return err
	}
	img := v.img
	snaps, err := listSnaps(img)
	if err != nil {
		img.Close()
		return mapErr(err, "volume "+id)
	}
	if len(snaps.user)+len(snaps.other) > 0 {
		img.Close()
		return errs.E(errs.Conflict, "volume %s has snapshots; delete them first", id)
	}
	parent, parentSnap := cloneParent(img, name)
	img.Close()
	if len(snaps.clone) > 0 {
		// Clones still need this image: keep it, hidden.
		return mapErr(rename(ioctx, name, name+deletedSuffix), "volume "+id)
	}
	if err := rbd.RemoveImage(ioctx, name); err != nil {
		if errno(err) == int(syscall.ENOTEMPTY) || errno(err) == int(syscall.EBUSY) {
			return errs.E(errs.Conflict, "volume %s is busy (open elsewhere or has snapshots)", id)
		}
		return mapErr(err, "volume "+id)
	}
	if parent != "" {
		releaseParent(ioctx, parent, parentSnap)
	}
	return nil
}

// releaseParent removes the .clone_snap a deleted clone came from and, if
// its image is a hidden deleted volume left with no snapshots, that image
// too, and so on up the chain. Failures leave the references in place
// (harmless: they are retried when the next clone of the parent goes).
func releaseParent(ioctx *rados.IOContext, parent, parentSnap string) {
	for parent != "" {
		img, err := rbd.OpenImage(ioctx, parent, rbd.NoSnapshot)
		if err != nil {
			return
		}
		grand, grandSnap := cloneParent(img, parent)
		s := img.GetSnapshot(parentSnap)
		if err := s.Unprotect(); err != nil && errno(err) != int(syscall.EINVAL) {
			img.Close()
			return
		}
		if err := s.Remove(); err != nil {
			img.Close()
			return
		}
		left, err := listSnaps(img)
		img.Close()
		if err != nil || !strings.HasSuffix(parent, deletedSuffix) ||
			len(left.user)+len(left.clone)+len(left.other) > 0 {
			return
		}
		if err := rbd.RemoveImage(ioctx, parent); err != nil {
			return
		}
		parent, parentSnap = grand, grandSnap
	}
}

// Capabilities reports the pool's space as Cinder's RBD driver does (from
// `ceph df`: free is the pool's max_avail, total that plus what the pool
// stores, both capped by a byte quota), and the volumes' provisioned size.
func (d *Driver) Capabilities(ctx context.Context) (driver.Capabilities, error) {
	c := driver.Capabilities{VolumeBackendName: d.cfg.BackendName, ThinProvisioning: true, Multiattach: true,
		Extra: map[string]any{"storage_protocol": "ceph", "vendor_name": "Open Source", "driver_version": "1.2.0",
			"sparse_copy_volume": true, "thin_provisioning_support": true, "max_over_subscription_ratio": "20.0",
			"reserved_percentage": 0}}
	if d.cfg.AvailabilityZone != "" {
		c.Extra["availability_zone"] = d.cfg.AvailabilityZone
	}
	ioctx, err := d.io()
	if err != nil {
		return c, err
	}
	if err := ctx.Err(); err != nil {
		return c, err
	}
	out, _, err := d.conn.MonCommand([]byte(`{"prefix":"df","format":"json"}`))
	if err != nil {
		return c, mapErr(err, "ceph df")
	}
	var df struct {
		Pools []struct {
			Name  string `json:"name"`
			Stats struct {
				Stored   float64 `json:"stored"`
				MaxAvail float64 `json:"max_avail"`
			} `json:"stats"`
		} `json:"pools"`
	}
	if err := json.Unmarshal(out, &df); err != nil {
		return c, fmt.Errorf("ceph df: %w", err)
	}
	found := false
	for _, p := range df.Pools {
		if p.Name == d.cfg.Pool {
			found = true
			free, total := p.Stats.MaxAvail, p.Stats.MaxAvail+p.Stats.Stored
			if q := d.quota(); q > 0 {
				total = q
				free = max(0, q-p.Stats.Stored)
			}
			c.TotalCapacityGB = round2(total / gib)
			c.FreeCapacityGB = round2(free / gib)
		}
	}
	if !found {
		return c, errs.E(errs.Unavailable, "[backend:%s] pool %s not in ceph df", d.cfg.Name, d.cfg.Pool)
	}
	var provisioned int64
	names, err := rbd.GetImageNames(ioctx)
	if err != nil {
		return c, mapErr(err, "pool "+d.cfg.Pool)
	}
	for _, n := range names {
		if !strings.HasPrefix(n, volPrefix) {
			continue
		}
		if img, err := rbd.OpenImageReadOnly(ioctx, n, rbd.NoSnapshot); err == nil {
			if s, err := img.GetSize(); err == nil {
				provisioned += int64(s)
			}
			img.Close()
		}
	}
	c.Extra["provisioned_capacity_gb"] = round2(float64(provisioned) / gib)
	return c, nil
}

// quota is the pool's max_bytes quota, 0 when none (or unknown).
func (d *Driver) quota() float64 {
	cmd := fmt.Sprintf(`{"prefix":"osd pool get-quota","pool":%q,"format":"json"}`, d.cfg.Pool)
	out, _, err := d.conn.MonCommand([]byte(cmd))
	if err != nil {
		return 0
	}
	var q struct {
		MaxBytes float64 `json:"quota_max_bytes"`
	}
	if json.Unmarshal(out, &q) != nil {
		return 0
	}
	return q.MaxBytes
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// List returns the volumes of the pool (not the hidden deleted ones nor
// temporary images).
func (d *Driver) List(ctx context.Context) ([]string, error) {
	ioctx, err := d.io()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	names, err := rbd.GetImageNames(ioctx)
	if err != nil {
		return nil, mapErr(err, "pool "+d.cfg.Pool)
	}
	var ids []string
	for _, n := range names {
		if id, ok := strings.CutPrefix(n, volPrefix); ok && idRE.MatchString(id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// ListSnapshots returns the snapshots of the volumes (not the driver's
// own .clone_snap snapshots).
func (d *Driver) ListSnapshots(ctx context.Context) ([]driver.SnapshotRef, error) {
	ids, err := d.List(ctx)
	if err != nil {
		return nil, err
	}
	ioctx, _ := d.io()
	var out []driver.SnapshotRef
	for _, id := range ids {
		img, err := rbd.OpenImageReadOnly(ioctx, volPrefix+id, rbd.NoSnapshot)
		if errors.Is(err, rbd.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, mapErr(err, "volume "+id)
		}
		s, err := listSnaps(img)
		img.Close()
		if err != nil {
			return nil, mapErr(err, "volume "+id)
		}
		for _, n := range s.user {
			out = append(out, driver.SnapshotRef{VolumeID: id, SnapshotID: strings.TrimPrefix(n, snapPrefix)})
		}
	}
	return out, nil
}
