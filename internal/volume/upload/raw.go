// Package upload turns a volume into image data for os-volume_upload_image:
// raw is streamed straight from the volume, qcow2 is produced by a native
// streaming writer whose size is known before the first byte, and the other
// disk formats are converted with qemu-img into a temporary file.
package upload

import (
	"context"
	"io"

	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// Raw returns a reader of the volume's raw bytes (driver.NewReader):
// ranges outside the volume's extents are produced as zeros without
// reading the volume, memory use is bounded and no temporary file is made.
// Reads fail with ctx's error once ctx is done.
func Raw(ctx context.Context, vol driver.Volume) io.Reader {
	return driver.NewReader(ctx, vol)
}
