package volume

import (
	"context"
	"io"
	"os"
	"path/filepath"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/imageformat"
)

// copyImageToVolume writes an image into the new volume. Raw images are
// streamed; other disk formats (and gzip containers) go through
// imageformat.ToRaw, which refuses images that refer to other files, as
// Cinder does for untrusted images.
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
	tmp := filepath.Join(s.deps.Config.Default.StatePath, "conversion")
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		return err
	}
	raw, err := imageformat.ToRaw(ctx, imageformat.Source{ImageID: w.Payload.ImageID,
		DiskFormat: v.ImageMetadata["disk_format"], ContainerFormat: v.ImageMetadata["container_format"],
		Data: rc, TempDir: tmp})
	if err != nil {
		return err
	}
	defer raw.Close()
	size := v.Size * gib
	if raw.VirtualSize > size {
		return errs.E(errs.Invalid, "Image virtual size %d is larger than the volume size %d.", raw.VirtualSize, size)
	}
	return b.drv.CreateFrom(ctx, v.ID, size, io.LimitReader(raw, size+1))
}
