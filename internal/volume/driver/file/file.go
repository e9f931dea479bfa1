// Package file is the volume driver that keeps each volume as a sparse raw
// file under a directory: holes stay holes, so an empty or mostly-zero
// volume costs almost no disk, and SEEK_DATA/SEEK_HOLE tell readers which
// ranges hold data. Snapshots are files next to the volumes; snapshots and
// clones share blocks with their source (reflinks) where the filesystem
// can, and are sparse copies of the data elsewhere.
package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/ashlar-dev/ashlar/internal/config"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// Linux lseek whence values for sparse files (not exported by syscall).
const (
	seekData = 3
	seekHole = 4
)

const (
	// blockSize is the granularity at which zero data is skipped: the
	// usual filesystem block, so every skipped block is a real hole.
	blockSize = 4096
	// chunkSize is how much CreateFrom reads at a time.
	chunkSize = 1 << 20
	tmpPrefix = ".tmp-"
	gib       = 1 << 30
	// volPrefix and snapPrefix start the names of volume and snapshot
	// files: volume-<id>, snapshot-<volume id>@<snapshot id> ('@' is not
	// allowed in ids, so the name splits one way only).
	volPrefix  = "volume-"
	snapPrefix = "snapshot-"
	snapSep    = "@"
)

// Driver is a file volume backend.
type Driver struct {
	dir         string
	backendName string
	totalGB     float64 // 0: report the filesystem's size
	az          string
	// nfsShare is the NFS export (host:/path) of dir, for hosts that
	// attach volumes over NFS; "" when only local attaches are served.
	nfsShare, nfsOptions string
	// localHosts are the connector host names that see dir directly.
	localHosts []string
}

// Interface guards.
var (
	_ driver.Driver     = (*Driver)(nil)
	_ driver.Allocator  = (*Driver)(nil)
	_ driver.Volume     = (*volume)(nil)
	_ driver.LocalFile  = (*volume)(nil)
	_ driver.Lister     = (*Driver)(nil)
	_ driver.Overwriter = (*Driver)(nil)
)

// New builds the driver for a [backend:<name>] section whose volume_driver
// is "file". It creates volumes_dir and removes temporary files a crash
// left behind, so no partial volume survives a restart.
func New(b config.Backend) (*Driver, error) {
	dir := b.Options["volumes_dir"]
	if dir == "" {
		return nil, errs.E(errs.Invalid, "[backend:%s] volumes_dir is required", b.Name)
	}
	// os-brick opens device_path on the attaching host: it must not
	// depend on this process's working directory.
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	d := &Driver{dir: dir, backendName: b.VolumeBackendName, az: b.Options["availability_zone"],
		nfsShare: b.Options["nfs_share"], nfsOptions: b.Options["nfs_mount_options"], localHosts: localHostNames()}
	if d.nfsShare != "" {
		if host, path, ok := strings.Cut(d.nfsShare, ":"); !ok || host == "" || !strings.HasPrefix(path, "/") {
			return nil, errs.E(errs.Invalid, "[backend:%s] nfs_share: want host:/path, got %q", b.Name, d.nfsShare)
		}
	}
	if d.backendName == "" {
		d.backendName = b.Name
	}
	if v := b.Options["total_capacity_gb"]; v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n < 0 {
			return nil, errs.E(errs.Invalid, "[backend:%s] total_capacity_gb: not a non-negative number: %q", b.Name, v)
		}
		d.totalGB = n
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("file volume driver: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("file volume driver: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return d, nil
}

// idRE keeps ids to names that cannot escape the directory.
var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$`)

func (d *Driver) path(id string) (string, error) {
	if !idRE.MatchString(id) {
		return "", errs.E(errs.Invalid, "invalid volume id %q", id)
	}
	return filepath.Join(d.dir, volPrefix+id), nil
}

// Path returns the file holding volume id (for tools such as qemu-img).
func (d *Driver) Path(id string) (string, error) { return d.path(id) }

// Create makes a volume of sizeBytes that is one hole.
func (d *Driver) Create(ctx context.Context, id string, sizeBytes int64) error {
	return d.create(ctx, id, sizeBytes, nil)
}

// CreateFrom makes a volume of sizeBytes from r, writing only blocks that
// are not all zeros. r longer than sizeBytes is refused (errs.TooLarge).
func (d *Driver) CreateFrom(ctx context.Context, id string, sizeBytes int64, r io.Reader) error {
	if r == nil {
		return errs.E(errs.Invalid, "no source data")
	}
	return d.create(ctx, id, sizeBytes, r)
}

// create writes into a temporary file and links it into place only when
// complete, so failures and crashes leave no partial volume.
func (d *Driver) create(ctx context.Context, id string, sizeBytes int64, r io.Reader) error {
	if sizeBytes <= 0 {
		return errs.E(errs.Invalid, "volume size must be positive, got %d", sizeBytes)
	}
	final, err := d.path(id)
	if err != nil {
		return err
	}
	return build(ctx, final, "volume "+id, false, func(f *os.File) error {
		if err := f.Truncate(sizeBytes); err != nil || r == nil {
			return err
		}
		return writeSparse(ctx, f, sizeBytes, r)
	})
}

// Overwrite replaces volume id's bytes with r's through a temporary file
// renamed over the volume, so a failure leaves the old bytes.
func (d *Driver) Overwrite(ctx context.Context, id string, r io.Reader) error {
	final, err := d.path(id)
	if err != nil {
		return err
	}
	st, err := os.Stat(final)
	if err != nil {
		return mapErr(err, "volume "+id)
	}
	size := st.Size()
	return build(ctx, final, "volume "+id, true, func(f *os.File) error {
		if err := f.Truncate(size); err != nil {
			return err
		}
		return writeSparse(ctx, f, size, r)
	})
}

// build makes the file final (volume or snapshot what) from a temporary
// file in final's directory that fill writes: the file appears under its
// name complete and synced, or not at all (New removes the temporary
// files a crash leaves). A new name is linked into place, which fails if
// it exists (errs.Conflict), so concurrent creates of one id cannot
// overwrite each other; with replace, the file is renamed over final, the
// existing file stays intact until then.
func build(ctx context.Context, final, what string, replace bool, fill func(f *os.File) error) error {
	if !replace {
		if _, err := os.Lstat(final); err == nil {
			return errs.E(errs.Conflict, "%s already exists", what)
		}
	}
	dir := filepath.Dir(final)
	f, err := os.CreateTemp(dir, tmpPrefix+filepath.Base(final)+"-")
	if err != nil {
		return mapErr(err, what)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		os.Remove(tmp)
	}()
	if err := fill(f); err != nil {
		return mapErr(err, what)
	}
	if err := f.Sync(); err != nil {
		return mapErr(err, what)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return mapErr(err, what)
	}
	// The work is done, but a caller that gave up must not find a result.
	if err := ctx.Err(); err != nil {
		return err
	}
	if replace {
		err = os.Rename(tmp, final)
	} else {
		err = os.Link(tmp, final)
	}
	if errors.Is(err, os.ErrExist) {
		return errs.E(errs.Conflict, "%s already exists", what)
	}
	if err != nil {
		return mapErr(err, what)
	}
	syncDir(dir)
	return nil
}

// syncDir makes a new directory entry durable; failures only weaken
// durability, so they are not reported.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		_ = f.Sync()
		f.Close()
	}
}

// writeSparse copies r into f, skipping all-zero blocks.
func writeSparse(ctx context.Context, f *os.File, size int64, r io.Reader) error {
	buf := make([]byte, chunkSize)
	zero := make([]byte, blockSize)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if off+int64(n) > size {
				return errs.E(errs.TooLarge, "source data is larger than the volume (%d bytes)", size)
			}
			if err := writeNonZero(f, buf[:n], off, zero); err != nil {
				return err
			}
			off += int64(n)
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return nil
		case rerr != nil:
			return rerr
		}
	}
}

// writeNonZero writes the runs of non-zero blocks of p at off.
func writeNonZero(f *os.File, p []byte, off int64, zero []byte) error {
	start := -1 // start of the current non-zero run
	for i := 0; i < len(p); i += blockSize {
		end := min(i+blockSize, len(p))
		isZero := bytes.Equal(p[i:end], zero[:end-i])
		if !isZero && start < 0 {
			start = i
		}
		if isZero && start >= 0 {
			if _, err := f.WriteAt(p[start:i], off+int64(start)); err != nil {
				return err
			}
			start = -1
		}
	}
	if start >= 0 {
		if _, err := f.WriteAt(p[start:], off+int64(start)); err != nil {
			return err
		}
	}
	return nil
}

// Open opens volume id for reading.
func (d *Driver) Open(ctx context.Context, id string) (driver.Volume, error) {
	p, err := d.path(id)
	if err != nil {
		return nil, err
	}
	return openFile(p, "volume "+id)
}

// openFile opens the volume or snapshot file p.
func openFile(p, what string) (driver.Volume, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, mapErr(err, what)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, mapErr(err, what)
	}
	return &volume{f: f, size: st.Size(), path: p}, nil
}

// Extend grows volume id; the new range is a hole.
func (d *Driver) Extend(ctx context.Context, id string, newSizeBytes int64) error {
	p, err := d.path(id)
	if err != nil {
		return err
	}
	st, err := os.Stat(p)
	if err != nil {
		return mapErr(err, "volume "+id)
	}
	if newSizeBytes < st.Size() {
		return errs.E(errs.Invalid, "new size %d is smaller than the volume's size %d", newSizeBytes, st.Size())
	}
	return mapErr(os.Truncate(p, newSizeBytes), "volume "+id)
}

// Delete removes volume id, unless it has snapshots (errs.Conflict).
func (d *Driver) Delete(ctx context.Context, id string) error {
	p, err := d.path(id)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(p); err != nil {
		return mapErr(err, "volume "+id)
	}
	snaps, err := d.listSnapshots(id)
	if err != nil {
		return mapErr(err, "volume "+id)
	}
	if len(snaps) > 0 {
		return errs.E(errs.Conflict, "volume %s has %d snapshot(s)", id, len(snaps))
	}
	return removeFile(p, "volume "+id)
}

// removeFile removes a volume or snapshot file durably.
func removeFile(p, what string) error {
	if err := os.Remove(p); err != nil {
		return mapErr(err, what)
	}
	syncDir(filepath.Dir(p))
	return nil
}

// Allocated reports the disk space volume id occupies (st_blocks).
func (d *Driver) Allocated(ctx context.Context, id string) (int64, error) {
	p, err := d.path(id)
	if err != nil {
		return 0, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return 0, mapErr(err, "volume "+id)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return sys.Blocks * 512, nil
	}
	return st.Size(), nil
}

// Capabilities reports the filesystem's space (or total_capacity_gb), thin
// provisioning, which sparse files give, multiattach, and
// sparse_copy_volume: copies (snapshots, clones, migrations) keep holes.
func (d *Driver) Capabilities(ctx context.Context) (driver.Capabilities, error) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(d.dir, &fs); err != nil {
		return driver.Capabilities{}, errs.Wrap(errs.Unavailable, err, "volume backend "+d.backendName+" is unavailable")
	}
	total := float64(fs.Blocks) * float64(fs.Bsize) / gib
	free := float64(fs.Bavail) * float64(fs.Bsize) / gib
	if d.totalGB > 0 {
		total = d.totalGB
		free = min(free, total)
	}
	extra := map[string]any{
		"storage_protocol": "file",
		"vendor_name":      "Ashlar",
		"driver_version":   "1.0",
		// Cinder's key for "copies keep the volume sparse" (its NFS driver
		// reports it). Cinder has no capability keys for snapshot or clone
		// support: every driver must have both.
		"sparse_copy_volume": true,
	}
	if d.az != "" {
		extra["availability_zone"] = d.az
	}
	// Provisioned = the sizes of the volumes and snapshots, whatever they
	// occupy: what thin provisioning over-subscribes (a snapshot sharing
	// its volume's blocks grows to its size as the volume is rewritten;
	// Cinder's LVM driver counts snapshots likewise).
	if ents, err := os.ReadDir(d.dir); err == nil {
		var prov int64
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), volPrefix) && !strings.HasPrefix(e.Name(), snapPrefix) {
				continue
			}
			if info, err := e.Info(); err == nil {
				prov += info.Size()
			}
		}
		extra["provisioned_capacity_gb"] = round2(float64(prov) / gib)
	}
	return driver.Capabilities{
		VolumeBackendName: d.backendName,
		TotalCapacityGB:   round2(total),
		FreeCapacityGB:    round2(free),
		ThinProvisioning:  true,
		// A volume is a file any number of readers and writers may open;
		// nothing in the driver ties it to one host.
		Multiattach: true,
		Extra:       extra,
	}, nil
}

// List implements driver.Lister: the ids of the volume files (temp files
// of creates in progress are not volumes yet).
func (d *Driver) List(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if id, ok := strings.CutPrefix(e.Name(), volPrefix); ok && e.Type().IsRegular() {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func round2(x float64) float64 { return float64(int64(x*100)) / 100 }

// mapErr turns OS errors about what ("volume <id>", "snapshot <id>") into
// error kinds.
func mapErr(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errs.KindOf(err) != errs.Other:
		return err
	case errors.Is(err, os.ErrNotExist):
		return errs.Wrap(errs.NotFound, err, what+" could not be found")
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EFBIG):
		return errs.Wrap(errs.TooLarge, err, "no space left for "+what)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// volume is an open volume file.
type volume struct {
	f    *os.File
	size int64
	path string
	mu   sync.Mutex // Extents moves the file offset
}

func (v *volume) ReadAt(p []byte, off int64) (int, error) { return v.f.ReadAt(p, off) }
func (v *volume) Close() error                            { return v.f.Close() }
func (v *volume) Size() int64                             { return v.size }

// ReadsInParallel implements driver.ParallelReader: ReadAt is a pread.
func (v *volume) ReadsInParallel() {}

// Path implements driver.LocalFile.
func (v *volume) Path() string { return v.path }

// Extents walks the file with SEEK_DATA/SEEK_HOLE. Filesystems without
// them report the whole file as one extent.
func (v *volume) Extents(ctx context.Context) ([]driver.Extent, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return dataRanges(ctx, v.f, v.size)
}

// dataRanges lists the ranges of f's first size bytes that hold data,
// with SEEK_DATA/SEEK_HOLE (moving f's offset). Filesystems without them
// report the whole file as one range.
func dataRanges(ctx context.Context, f *os.File, size int64) ([]driver.Extent, error) {
	var out []driver.Extent
	var off int64
	for off < size {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, err := f.Seek(off, seekData)
		if errors.Is(err, syscall.ENXIO) {
			break // no data after off
		}
		if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EOPNOTSUPP) {
			return []driver.Extent{{Offset: 0, Length: size}}, nil
		}
		if err != nil {
			return nil, err
		}
		hole, err := f.Seek(data, seekHole)
		if err != nil {
			return nil, err
		}
		hole = min(hole, size)
		if data >= hole {
			break
		}
		out = append(out, driver.Extent{Offset: data, Length: hole - data})
		off = hole
	}
	return out, nil
}
