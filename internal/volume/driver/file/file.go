// Package file is the volume driver that keeps each volume as a sparse raw
// file under a directory: holes stay holes, so an empty or mostly-zero
// volume costs almost no disk, and SEEK_DATA/SEEK_HOLE tell readers which
// ranges hold data.
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
)

// Driver is a file volume backend.
type Driver struct {
	dir         string
	backendName string
	totalGB     float64 // 0: report the filesystem's size
	az          string
}

// Interface guards.
var (
	_ driver.Driver    = (*Driver)(nil)
	_ driver.Allocator = (*Driver)(nil)
	_ driver.Volume    = (*volume)(nil)
	_ driver.LocalFile = (*volume)(nil)
)

// New builds the driver for a [backend:<name>] section whose volume_driver
// is "file". It creates volumes_dir and removes temporary files a crash
// left behind, so no partial volume survives a restart.
func New(b config.Backend) (*Driver, error) {
	dir := b.Options["volumes_dir"]
	if dir == "" {
		return nil, errs.E(errs.Invalid, "[backend:%s] volumes_dir is required", b.Name)
	}
	d := &Driver{dir: dir, backendName: b.VolumeBackendName, az: b.Options["availability_zone"]}
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
	return filepath.Join(d.dir, "volume-"+id), nil
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
func (d *Driver) create(ctx context.Context, id string, sizeBytes int64, r io.Reader) (err error) {
	if sizeBytes <= 0 {
		return errs.E(errs.Invalid, "volume size must be positive, got %d", sizeBytes)
	}
	final, err := d.path(id)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(final); err == nil {
		return errs.E(errs.Conflict, "volume %s already exists", id)
	}
	f, err := os.CreateTemp(d.dir, tmpPrefix+id+"-")
	if err != nil {
		return mapErr(err, id)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		os.Remove(tmp)
	}()
	if err := f.Truncate(sizeBytes); err != nil {
		return mapErr(err, id)
	}
	if r != nil {
		if err := writeSparse(ctx, f, sizeBytes, r); err != nil {
			return mapErr(err, id)
		}
		if err := f.Sync(); err != nil {
			return mapErr(err, id)
		}
	}
	if err := f.Close(); err != nil {
		f = nil
		return mapErr(err, id)
	}
	f = nil
	// link fails if the name exists, unlike rename: concurrent creates of
	// one id cannot overwrite each other.
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, os.ErrExist) {
			return errs.E(errs.Conflict, "volume %s already exists", id)
		}
		return mapErr(err, id)
	}
	syncDir(d.dir)
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
	f, err := os.Open(p)
	if err != nil {
		return nil, mapErr(err, id)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, mapErr(err, id)
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
		return mapErr(err, id)
	}
	if newSizeBytes < st.Size() {
		return errs.E(errs.Invalid, "new size %d is smaller than the volume's size %d", newSizeBytes, st.Size())
	}
	return mapErr(os.Truncate(p, newSizeBytes), id)
}

// Delete removes volume id.
func (d *Driver) Delete(ctx context.Context, id string) error {
	p, err := d.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return mapErr(err, id)
	}
	syncDir(d.dir)
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
		return 0, mapErr(err, id)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return sys.Blocks * 512, nil
	}
	return st.Size(), nil
}

// Capabilities reports the filesystem's space (or total_capacity_gb), thin
// provisioning, which sparse files give, and multiattach.
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
	}
	if d.az != "" {
		extra["availability_zone"] = d.az
	}
	// Provisioned = the volumes' sizes, whatever they occupy: what thin
	// provisioning over-subscribes.
	if ents, err := os.ReadDir(d.dir); err == nil {
		var prov int64
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), "volume-") {
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
		if id, ok := strings.CutPrefix(e.Name(), "volume-"); ok && e.Type().IsRegular() {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

var _ driver.Lister = (*Driver)(nil)

func round2(x float64) float64 { return float64(int64(x*100)) / 100 }

// mapErr turns OS errors into error kinds.
func mapErr(err error, id string) error {
	switch {
	case err == nil:
		return nil
	case errs.KindOf(err) != errs.Other:
		return err
	case errors.Is(err, os.ErrNotExist):
		return errs.Wrap(errs.NotFound, err, "volume "+id+" could not be found")
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EFBIG):
		return errs.Wrap(errs.TooLarge, err, "no space left for volume "+id)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("volume %s: %w", id, err)
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

// Path implements driver.LocalFile.
func (v *volume) Path() string { return v.path }

// Extents walks the file with SEEK_DATA/SEEK_HOLE. Filesystems without
// them report the whole file as one extent.
func (v *volume) Extents(ctx context.Context) ([]driver.Extent, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []driver.Extent
	var off int64
	for off < v.size {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, err := v.f.Seek(off, seekData)
		if errors.Is(err, syscall.ENXIO) {
			break // no data after off
		}
		if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EOPNOTSUPP) {
			return []driver.Extent{{Offset: 0, Length: v.size}}, nil
		}
		if err != nil {
			return nil, err
		}
		hole, err := v.f.Seek(data, seekHole)
		if err != nil {
			return nil, err
		}
		hole = min(hole, v.size)
		if data >= hole {
			break
		}
		out = append(out, driver.Extent{Offset: data, Length: hole - data})
		off = hole
	}
	return out, nil
}
