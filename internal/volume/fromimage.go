package volume

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/ashlar-dev/ashlar/internal/errs"
)

// qemuInputFormats maps Glance disk formats qemu-img can read to its names.
var qemuInputFormats = map[string]string{"qcow2": "qcow2", "vmdk": "vmdk", "vdi": "vdi", "vhd": "vpc",
	"vhdx": "vhdx", "ploop": "parallels"}

// copyImageToVolume writes an image into the new volume: raw images are
// streamed; other disk formats are downloaded to a temporary file,
// inspected (no backing or data files: an image must not make qemu-img
// read host files) and converted to raw with qemu-img, as Cinder does.
func (s *Service) copyImageToVolume(ctx context.Context, w *work, b *backend, v *vol) error {
	gc, err := s.glanceForCaller(w.Payload.ImageEndpoint)
	if err != nil {
		return err
	}
	rc, err := gc.Download(ctx, w.Payload.Token, w.Payload.ImageID)
	if err != nil {
		return err
	}
	defer rc.Close()
	size := v.Size * gib
	df := v.ImageMetadata["disk_format"]
	if df == "" || df == "raw" || df == "iso" {
		return b.drv.CreateFrom(ctx, v.ID, size, io.LimitReader(rc, size+1))
	}
	qfmt, ok := qemuInputFormats[df]
	if !ok {
		return errs.E(errs.Invalid, "Image disk format %s cannot be written to a volume.", df)
	}
	dir := filepath.Join(s.deps.Config.Default.StatePath, "conversion")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, "image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "src")
	f, err := os.Create(src)
	if err != nil {
		return err
	}
	// An image file may be larger than its virtual size only by metadata;
	// twice the volume bounds what is worth downloading.
	n, err := io.Copy(f, io.LimitReader(rc, 2*size+(64<<20)))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if n > 2*size+(64<<20)-1 {
		return errs.E(errs.Invalid, "Image %s is too large for a %d GiB volume.", w.Payload.ImageID, v.Size)
	}
	out, err := exec.CommandContext(ctx, "qemu-img", "info", "--output=json", "-f", qfmt, src).Output()
	if err != nil {
		return fmt.Errorf("qemu-img info: %w", err)
	}
	var info struct {
		VirtualSize     int64  `json:"virtual-size"`
		BackingFilename string `json:"backing-filename"`
		FormatSpecific  struct {
			Data struct {
				DataFile string `json:"data-file"`
			} `json:"data"`
		} `json:"format-specific"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return fmt.Errorf("qemu-img info: %w", err)
	}
	if info.BackingFilename != "" || info.FormatSpecific.Data.DataFile != "" {
		return errs.E(errs.Invalid, "Image %s refers to other files and cannot be used.", w.Payload.ImageID)
	}
	if info.VirtualSize > size {
		return errs.E(errs.Invalid, "Image virtual size %d is larger than the volume size %d.", info.VirtualSize, size)
	}
	dst := filepath.Join(tmp, "raw")
	if out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-f", qfmt, "-O", "raw", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("qemu-img convert: %w: %s", err, out)
	}
	if err := os.Remove(src); err != nil {
		return err
	}
	rf, err := os.Open(dst)
	if err != nil {
		return err
	}
	defer rf.Close()
	return b.drv.CreateFrom(ctx, v.ID, size, rf)
}
