package volume

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/upload"
)

// uploadDiskFormats are the disk formats os-volume_upload_image accepts,
// in the order of Cinder's schema message.
var uploadDiskFormats = []string{"raw", "vmdk", "vdi", "qcow2", "vhd", "vhdx", "ploop"}

// uploadRequest is a validated os-volume_upload_image body.
type uploadRequest struct {
	ImageName, DiskFormat, ContainerFormat string
	Force                                  bool
	Visibility                             string
	Protected                              bool
	hasVisibility                          bool
}

func parseUpload(arg any, mv microversion) (*uploadRequest, error) {
	m, err := argObject("os-volume_upload_image", arg)
	if err != nil {
		return nil, err
	}
	allowedKeys := []string{"image_name", "force", "disk_format", "container_format"}
	if mv >= 1 {
		allowedKeys = append(allowedKeys, "visibility", "protected")
	}
	if err := checkAllowed("os-volume_upload_image", m, allowedKeys...); err != nil {
		return nil, err
	}
	u := &uploadRequest{DiskFormat: "raw", ContainerFormat: "bare", Visibility: "private"}
	raw, ok := m["image_name"]
	if !ok {
		return nil, invalidInput("os-volume_upload_image", m, "'image_name' is a required property")
	}
	name, ok := raw.(string)
	if !ok {
		return nil, invalidInput("image_name", raw, "%s is not of type 'string'", pyRepr(raw, true))
	}
	if name == "" {
		return nil, invalidInput("image_name", name, "'' is too short")
	}
	if len([]rune(name)) > 255 {
		return nil, invalidInput("image_name", name, "'%s' is too long", name)
	}
	u.ImageName = name
	if v, ok := m["force"]; ok && v != nil {
		if u.Force, err = parseBool("force", v); err != nil {
			return nil, err
		}
	}
	if v, ok := m["disk_format"]; ok {
		df, _ := v.(string)
		found := false
		for _, f := range uploadDiskFormats {
			found = found || f == df
		}
		if !found {
			return nil, invalidInput("disk_format", v, "%s is not one of ['raw', 'vmdk', 'vdi', 'qcow2', 'vhd', 'vhdx', 'ploop']", pyRepr(v, true))
		}
		u.DiskFormat = df
	}
	if cf, err := optString(m, "container_format", 255); err != nil {
		return nil, err
	} else if cf != nil {
		u.ContainerFormat = *cf
	}
	if v, ok := m["visibility"]; ok {
		vis, _ := v.(string)
		switch vis {
		case "public", "private", "shared", "community":
		default:
			return nil, invalidInput("visibility", v, "%s is not one of ['community', 'public', 'private', 'shared']", pyRepr(v, true))
		}
		u.Visibility, u.hasVisibility = vis, true
	}
	if v, ok := m["protected"]; ok {
		if u.Protected, err = parseBool("protected", v); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// actUploadImage implements os-volume_upload_image: validate, move the
// volume to uploading, create the image, record the durable upload and
// answer 202. Every rejection restores the volume and leaves no image.
func (s *Service) actUploadImage(w http.ResponseWriter, r *http.Request, arg any) {
	ctx := r.Context()
	mv := versionOf(r)
	u, err := parseUpload(arg, mv)
	if err != nil {
		fail(w, r, err)
		return
	}
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_actions:upload_image")
	if err != nil {
		fail(w, r, err)
		return
	}
	if u.Visibility == "public" && u.hasVisibility {
		if err := enforce(r, "volume_extension:volume_actions:upload_public", v.ProjectID); err != nil {
			fail(w, r, err)
			return
		}
	}
	if u.ContainerFormat != "bare" && u.ContainerFormat != "compressed" {
		// Refused before any image exists (Cinder would leave one behind).
		fail(w, r, errs.E(errs.Invalid, "Invalid container-format '%s' specified. Allowed container-formats are %s.",
			u.ContainerFormat, strings.Join(upload.ContainerFormats, ", ")))
		return
	}
	var t *volType
	if v.TypeID != nil {
		if t, err = s.getType(ctx, s.deps.DB, nil, *v.TypeID, false); err != nil {
			fail(w, r, err)
			return
		}
	}
	if err := setStatus(ctx, s.deps.DB, v.ID, "uploading", "available"); err != nil {
		fail(w, r, err)
		return
	}
	bg := context.WithoutCancel(ctx)
	restore := func() { _ = setStatus(bg, s.deps.DB, v.ID, v.Status, "uploading") }
	c := caller(r)
	gc, err := s.glanceFor(r)
	if err != nil {
		restore()
		fail(w, r, err)
		return
	}
	store := ""
	if t != nil {
		store = t.ExtraSpecs[StoreSpec]
	}
	if store != "" {
		// The store may have been removed or made read-only since the
		// type was written: refuse now rather than fail after the 202.
		if err := checkStore(ctx, gc, c.Token, store); err != nil {
			restore()
			if k := errs.KindOf(err); k == errs.NotFound || k == errs.Invalid {
				err = errs.E(errs.Invalid, "Invalid volume type: %s", errs.Message(err))
			}
			fail(w, r, err)
			return
		}
	}
	fields := map[string]any{"name": u.ImageName, "disk_format": u.DiskFormat, "container_format": u.ContainerFormat}
	if mv >= 1 {
		fields["visibility"] = u.Visibility
		fields["protected"] = u.Protected
	}
	for k, val := range v.ImageMetadata {
		if coreImageProps[k] || reservedNamespace(k) {
			continue
		}
		if _, set := fields[k]; !set {
			fields[k] = val
		}
	}
	img, err := gc.CreateImage(ctx, c.Token, fields)
	if err != nil {
		restore()
		if errs.KindOf(err) == errs.Other {
			err = errs.Wrap(errs.Unavailable, err, "The image service is unavailable.")
		} else if k := errs.KindOf(err); k != errs.Unauthorized && k != errs.Unavailable {
			err = errs.E(errs.Invalid, "%s", errs.Message(err))
		}
		fail(w, r, err)
		return
	}
	p := workPayload{ImageID: img.ID, ImageEndpoint: c.EndpointURL("image", "public"), Token: c.Token,
		DiskFormat: u.DiskFormat, ContainerFormat: u.ContainerFormat, Store: store, PreviousStatus: v.Status, ProjectID: v.ProjectID}
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		return s.addWork(ctx, tx, v.ID, workUpload, p, api.RequestID(ctx))
	})
	if err != nil {
		_ = gc.DeleteImage(bg, c.Token, img.ID)
		restore()
		fail(w, r, err)
		return
	}
	s.wake()
	var vt any
	if t != nil {
		vt = map[string]any{"id": t.ID, "name": t.Name, "description": t.Description, "is_public": t.IsPublic,
			"extra_specs": t.ExtraSpecs, "qos_specs_id": nil, "created_at": fmtTime(t.CreatedAt),
			"updated_at": fmtTime(t.UpdatedAt), "deleted_at": nil, "deleted": false}
	}
	visibility, protected := img.Visibility, img.Protected
	if visibility == "" {
		visibility = u.Visibility
	}
	api.WriteJSON(w, http.StatusAccepted, map[string]any{"os-volume_upload_image": map[string]any{
		"id": v.ID, "updated_at": fmtTime(v.UpdatedAt), "status": "uploading", "display_description": v.Description,
		"size": v.Size, "volume_type": vt, "image_id": img.ID, "container_format": u.ContainerFormat,
		"disk_format": u.DiskFormat, "image_name": u.ImageName, "protected": protected, "visibility": visibility,
	}})
}

// runUpload streams the volume to the image with X-Image-Meta-Store set to
// the type's store. On failure the image is deleted, the volume returns to
// its previous status and a user message records why.
func (s *Service) runUpload(ctx context.Context, w *work, v *vol, giveUp bool) error {
	if v.Status != "uploading" {
		return nil
	}
	p := w.Payload
	prev := p.PreviousStatus
	if prev == "" {
		prev = "available"
	}
	gc, gerr := s.glanceForCaller(p.ImageEndpoint)
	failed := func(cause error) error {
		if ctx.Err() != nil {
			return cause // shutting down: the next start resumes the upload
		}
		bg := context.WithoutCancel(ctx)
		if gc != nil {
			if img, err := gc.GetImage(bg, p.Token, p.ImageID); err == nil && (img.Status == "queued" || img.Status == "saving") {
				_ = gc.DeleteImage(bg, p.Token, p.ImageID)
			}
		}
		_ = setStatus(bg, s.deps.DB, v.ID, prev, "uploading")
		event, msg := eventUploadImage, "copy volume to image:Failed to upload volume to image at backend."
		if errs.KindOf(cause) == errs.TooLarge {
			event, msg = eventUploadQuota, "copy volume to image:Not enough quota resource for operation."
		}
		s.recordMessage(bg, v.ProjectID, v.ID, w.RequestID, event, msg)
		return cause
	}
	if gerr != nil {
		return failed(gerr)
	}
	if giveUp {
		return failed(errs.E(errs.Other, "upload interrupted too often"))
	}
	var b *backend
	if v.Host != nil {
		b = s.backendNamed(*v.Host)
	}
	if b == nil {
		return failed(errs.E(errs.Unavailable, "volume backend not available"))
	}
	dv, err := b.drv.Open(ctx, v.ID)
	if err != nil {
		return failed(err)
	}
	defer dv.Close()
	tmp := filepath.Join(s.deps.Config.Default.StatePath, "conversion")
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		return failed(err)
	}
	err = upload.UploadWith(ctx, gc, dv, upload.Options{Token: p.Token, ImageID: p.ImageID, Store: p.Store,
		DiskFormat: p.DiskFormat, ContainerFormat: p.ContainerFormat,
		TempDir: tmp})
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return failed(err)
	}
	return setStatus(context.WithoutCancel(ctx), s.deps.DB, v.ID, prev, "uploading")
}
