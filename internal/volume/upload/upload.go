package upload

import (
	"context"
	"io"

	"github.com/ashlar-dev/ashlar/internal/glanceclient"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// Options describe one upload of a volume's data to an existing (queued)
// image.
type Options struct {
	Token   string
	ImageID string
	// Store is the target store (X-Image-Meta-Store); "" is the default store.
	Store           string
	DiskFormat      string // raw, qcow2, vmdk, vdi, vhd, vhdx or ploop
	ContainerFormat string // bare ("" too) or compressed
	// TempDir holds temporary files of qemu-img conversions; "" is the
	// system default.
	TempDir string
	// Progress, when set, wraps the stream sent to the image service
	// (size: the bytes it will carry, -1 when not known), to count them.
	Progress func(r io.Reader, size int64) io.Reader
}

// Upload streams vol as diskFormat into image imageID, in store (or the
// default store when empty), using the caller's token.
func Upload(ctx context.Context, client glanceclient.Client, token, imageID, store string, vol driver.Volume, diskFormat string) error {
	return UploadWith(ctx, client, vol, Options{Token: token, ImageID: imageID, Store: store, DiskFormat: diskFormat})
}

// UploadWith is Upload with every option. It does not delete the image on
// failure: the caller, which created it, decides.
func UploadWith(ctx context.Context, client glanceclient.Client, vol driver.Volume, o Options) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops a compressing goroutine if the upload fails
	r, size, err := Image(ctx, vol, o.DiskFormat, o.ContainerFormat, o.TempDir)
	if err != nil {
		return err
	}
	defer r.Close()
	var body io.Reader = r
	if o.Progress != nil {
		body = o.Progress(r, size)
	}
	return client.Upload(ctx, o.Token, o.ImageID, o.Store, body, size)
}
