package volume

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/glanceclient"
	"github.com/ashlar-dev/ashlar/internal/imageformat"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// prepareFromImage checks the image (active, fits) and records its
// metadata on the volume, as Cinder's create flow does.
func (s *Service) prepareFromImage(r *http.Request, v *vol, imageID string) error {
	gc, err := s.glanceFor(r)
	if err != nil {
		return err
	}
	img, err := gc.GetImage(r.Context(), caller(r).Token, imageID)
	if errs.KindOf(err) == errs.NotFound {
		return errs.E(errs.NotFound, "Image %s could not be found.", imageID)
	}
	if err != nil {
		return imageServiceError(err)
	}
	if img.Status != "active" {
		return errs.E(errs.Invalid, "Invalid image identifier or unable to access requested image.")
	}
	if err := fitImage(v, img); err != nil {
		return err
	}
	v.ImageID = &img.ID
	recordImageMetadata(v.ImageMetadata, img)
	return nil
}

// fitImage sizes a volume without a size for the image and refuses a size
// the image (or its min_disk) does not fit in.
func fitImage(v *vol, img *glanceclient.Image) error {
	imgGiB := (img.Size + gib - 1) / gib
	if img.VirtualSize > 0 {
		imgGiB = max(imgGiB, (img.VirtualSize+gib-1)/gib)
	}
	if v.Size == 0 {
		v.Size = max(imgGiB, img.MinDisk, 1)
	}
	if v.Size < imgGiB {
		return errs.E(errs.Invalid, "Invalid input received: Size of specified image %d is larger than volume size %d.", imgGiB, v.Size)
	}
	if v.Size < img.MinDisk {
		return errs.E(errs.Invalid, "Invalid input received: Volume size %dGB cannot be smaller than the image minDisk size %dGB.", v.Size, img.MinDisk)
	}
	return nil
}

// recordImageMetadata puts what Cinder keeps of an image into md: the
// core fields and every property outside the reserved namespaces.
func recordImageMetadata(md map[string]string, img *glanceclient.Image) {
	md["image_id"], md["image_name"] = img.ID, img.Name
	md["checksum"], md["container_format"], md["disk_format"] = img.Checksum, img.ContainerFormat, img.DiskFormat
	md["min_disk"], md["size"] = strconv.FormatInt(img.MinDisk, 10), strconv.FormatInt(img.Size, 10)
	md["min_ram"] = "0"
	for k, pv := range img.Properties {
		if k == "min_ram" {
			md[k] = scalarString(pv)
			continue
		}
		if reservedNamespace(k) {
			continue
		}
		if str := scalarString(pv); str != "" || pv != nil {
			md[k] = str
		}
	}
}

// coreImageProps are glance_core_properties plus what Cinder records
// itself; they are not copied to images uploaded from the volume.
var coreImageProps = map[string]bool{"checksum": true, "container_format": true, "disk_format": true,
	"image_name": true, "image_id": true, "min_disk": true, "min_ram": true, "name": true, "size": true}

// imageTopLevel are Glance image fields that are not properties.
var imageTopLevel = map[string]bool{"id": true, "name": true, "status": true, "size": true, "virtual_size": true,
	"disk_format": true, "container_format": true, "checksum": true, "stores": true, "min_disk": true,
	"visibility": true, "protected": true, "owner": true, "created_at": true, "updated_at": true, "tags": true,
	"self": true, "file": true, "schema": true, "locations": true, "direct_url": true, "os_hash_algo": true,
	"os_hash_value": true, "os_hidden": true, "os_glance_failed_import": true, "os_glance_importing_to_stores": true}

// reservedNamespace reports keys never copied between images and volumes.
func reservedNamespace(k string) bool {
	return imageTopLevel[k] || strings.HasPrefix(k, "os_glance") || strings.HasPrefix(k, "img_signature")
}

// scalarString renders an image property value as Cinder stores it.
func scalarString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return pyRepr(x, false)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// conversionDir is where image conversions keep their temporary files.
func (s *Service) conversionDir() (string, error) {
	tmp := filepath.Join(s.deps.Config.Default.StatePath, "conversion")
	return tmp, os.MkdirAll(tmp, 0o750)
}

// cloneImage makes the volume from the image without copying its data
// when the backend can (driver.ImageCloner: an RBD backend cloning an
// image of an rbd store in its cluster) and the image is a bare raw
// image, as Cinder's clone_image requires. The image's locations come
// from the image service (shown when it shows locations or direct_url to
// the caller); handled is false when there is nothing to clone from.
func (s *Service) cloneImage(ctx context.Context, gc glanceclient.Client, w *work, b *backend, v *vol) (bool, error) {
	c, ok := b.drv.(driver.ImageCloner)
	if !ok || v.ImageMetadata["disk_format"] != "raw" || v.ImageMetadata["container_format"] != "bare" {
		return false, nil
	}
	img, err := gc.GetImage(ctx, w.Payload.Token, w.Payload.ImageID)
	if err != nil {
		return false, nil // the copy path reports what is wrong
	}
	var locs []string
	if u, ok := img.Properties["direct_url"].(string); ok {
		locs = append(locs, u)
	}
	if l, ok := img.Properties["locations"].([]any); ok {
		for _, e := range l {
			if m, ok := e.(map[string]any); ok {
				if u, ok := m["url"].(string); ok {
					locs = append(locs, u)
				}
			}
		}
	}
	if len(locs) == 0 {
		return false, nil
	}
	return c.CloneImage(ctx, v.ID, v.Size*gib, locs)
}

// copyImageToVolume writes an image into the new volume. Raw images are
// streamed; other disk formats (and gzip containers) go through
// imageformat.ToRaw, which refuses images that refer to other files, as
// Cinder does for untrusted images.
func (s *Service) copyImageToVolume(ctx context.Context, w *work, b *backend, v *vol) error {
	gc, err := s.glanceForCaller(w.Payload.ImageEndpoint)
	if err != nil {
		return err
	}
	if handled, err := s.cloneImage(ctx, gc, w, b, v); handled || err != nil {
		return err
	}
	rc, err := gc.Download(ctx, w.Payload.Token, w.Payload.ImageID)
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := s.conversionDir()
	if err != nil {
		return err
	}
	imageSize, err := strconv.ParseInt(v.ImageMetadata["size"], 10, 64)
	if err != nil {
		imageSize = -1
	}
	raw, err := imageformat.ToRaw(ctx, imageformat.Source{ImageID: w.Payload.ImageID,
		DiskFormat: v.ImageMetadata["disk_format"], ContainerFormat: v.ImageMetadata["container_format"],
		Data: w.progress(rc, imageSize), TempDir: tmp})
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
