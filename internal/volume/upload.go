package volume

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/glanceclient"
	"github.com/ashlar-dev/ashlar/internal/task"
	"github.com/ashlar-dev/ashlar/internal/volume/upload"
)

// uploadRequest is a validated os-volume_upload_image body.
type uploadRequest struct {
	ImageName, DiskFormat, ContainerFormat string
	Force                                  bool
	Visibility                             string
	Protected                              bool
	hasVisibility                          bool
}

// uploadVisibilities are the visibility values accepted from 3.1, in the
// order of Cinder's schema message.
var uploadVisibilities = []string{"community", "public", "private", "shared"}

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
	if u.ImageName, err = parseImageName(m); err != nil {
		return nil, err
	}
	if v := m["force"]; v != nil {
		if u.Force, err = parseBool("force", v); err != nil {
			return nil, err
		}
	}
	if v, ok := m["disk_format"]; ok {
		if u.DiskFormat, err = oneOf("disk_format", v, upload.DiskFormats); err != nil {
			return nil, err
		}
	}
	if cf, err := optString(m, "container_format", 255); err != nil {
		return nil, err
	} else if cf != nil {
		u.ContainerFormat = *cf
	}
	if v, ok := m["visibility"]; ok {
		if u.Visibility, err = oneOf("visibility", v, uploadVisibilities); err != nil {
			return nil, err
		}
		u.hasVisibility = true
	}
	if v, ok := m["protected"]; ok {
		if u.Protected, err = parseBool("protected", v); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// parseImageName reads the required image_name (1 to 255 characters).
func parseImageName(m map[string]any) (string, error) {
	raw, ok := m["image_name"]
	if !ok {
		return "", invalidInput("os-volume_upload_image", m, "'image_name' is a required property")
	}
	name, ok := raw.(string)
	switch {
	case !ok:
		return "", invalidInput("image_name", raw, "%s is not of type 'string'", pyRepr(raw, true))
	case name == "":
		return "", invalidInput("image_name", name, "'' is too short")
	case len([]rune(name)) > 255:
		return "", invalidInput("image_name", name, "'%s' is too long", name)
	}
	return name, nil
}

// oneOf checks a JSON-schema enum: v must be a string among values.
func oneOf(field string, v any, values []string) (string, error) {
	if s, ok := v.(string); ok && slices.Contains(values, s) {
		return s, nil
	}
	list := make([]any, len(values))
	for i, s := range values {
		list[i] = s
	}
	return "", invalidInput(field, v, "%s is not one of %s", pyRepr(v, true), pyRepr(list, true))
}

// actUploadImage implements os-volume_upload_image: validate, move the
// volume to uploading, create the image, record the durable upload and
// answer 202. Every rejection restores the volume and leaves no image.
func (s *Service) actUploadImage(w http.ResponseWriter, r *http.Request, arg any) error {
	u, err := parseUpload(arg, versionOf(r))
	if err != nil {
		return err
	}
	ctx := r.Context()
	v, err := s.volumeFor(ctx, s.deps.DB, r, "volume_extension:volume_actions:upload_image")
	if err != nil {
		return err
	}
	if u.Visibility == "public" && u.hasVisibility {
		if err := enforce(r, "volume_extension:volume_actions:upload_public", v.ProjectID); err != nil {
			return err
		}
	}
	if !slices.Contains(upload.ContainerFormats, u.ContainerFormat) {
		// Refused before any image exists (Cinder would leave one behind).
		return errs.E(errs.Invalid, "Invalid container-format '%s' specified. Allowed container-formats are %s.",
			u.ContainerFormat, strings.Join(upload.ContainerFormats, ", "))
	}
	var t *volType
	if v.TypeID != nil {
		if t, err = typeByID(ctx, s.deps.DB, *v.TypeID); err != nil {
			return err
		}
	}
	// force uploads an in-use volume only where the operator allows it
	// (Cinder ignores force otherwise).
	from := []string{"available"}
	if u.Force && s.deps.Config.Volume.EnableForceUpload {
		from = append(from, "in-use")
	}
	tk, p, err := s.beginUploadWork(r, v, t, u, from)
	if err != nil {
		return err
	}
	img, err := s.startUpload(r, v, t, u, tk, p)
	if err != nil {
		return err
	}
	s.wake()
	return reply(w, http.StatusAccepted, map[string]any{"os-volume_upload_image": uploadView(v, t, img, u)})
}

// storeOf is the image store uploads of volumes of type t go to ("" for
// the image service's default).
func storeOf(t *volType) string {
	if t == nil {
		return ""
	}
	return t.ExtraSpecs[StoreSpec]
}

// beginUploadWork moves the volume to uploading and records its upload
// task, held by this node, in one transaction. The image's id is chosen
// here, before the image exists, so that a node that dies before handing
// the task off leaves one for another node to finish or roll back: it
// uploads into the image if the image was made, else returns the volume
// to its status with a user message. A volume never stays uploading with
// no task to move it on.
func (s *Service) beginUploadWork(r *http.Request, v *vol, t *volType, u *uploadRequest, from []string) (*task.Task, workPayload, error) {
	ctx := r.Context()
	c := caller(r)
	p := workPayload{ImageID: uuid.NewString(), ImageEndpoint: c.EndpointURL("image", "public"), Token: c.Token,
		DiskFormat: u.DiskFormat, ContainerFormat: u.ContainerFormat, Store: storeOf(t), PreviousStatus: v.Status,
		ProjectID: v.ProjectID}
	var tk *task.Task
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if err := setStatus(ctx, tx, v.ID, "uploading", from...); err != nil {
			return err
		}
		var err error
		tk, err = s.tasks.Begin(context.WithoutCancel(ctx), tx, task.Spec{Kind: workUpload, Subject: v.ID, Payload: p,
			RequestID: api.RequestID(ctx), ProjectID: p.ProjectID, Store: p.Store})
		return err
	})
	return tk, p, err
}

// startUpload creates the image of the upload begun as tk and hands tk to
// the runners. On failure the volume returns to its status, the task is
// failed and no image is left.
func (s *Service) startUpload(r *http.Request, v *vol, t *volType, u *uploadRequest, tk *task.Task, p workPayload) (img *glanceclient.Image, err error) {
	ctx := r.Context()
	bg := context.WithoutCancel(ctx)
	defer tk.Release()
	c := caller(r)
	var gc glanceclient.Client
	asked := false // whether the image may exist (a lost answer to its create too)
	defer func() {
		if err == nil {
			return
		}
		if asked {
			_ = gc.DeleteImage(bg, c.Token, p.ImageID)
		}
		img = nil
		cause := err
		if ferr := s.deps.DB.InTx(bg, func(tx *db.Tx) error {
			if err := setStatus(bg, tx, v.ID, v.Status, "uploading"); err != nil {
				return err
			}
			return tk.Fail(bg, tx, cause)
		}); ferr != nil {
			// The task stays leased until Release: another node rolls it back.
			s.deps.Logger.Warn("rolling back a refused upload", "volume", v.ID, "err", ferr)
		}
	}()
	if gc, err = s.glanceFor(r); err != nil {
		return nil, err
	}
	if p.Store != "" {
		// The store may have been removed or made read-only since the
		// type was written: refuse now rather than fail after the 202.
		if err := checkStore(ctx, gc, c.Token, p.Store); err != nil {
			if k := errs.KindOf(err); k == errs.NotFound || k == errs.Invalid {
				err = errs.E(errs.Invalid, "Invalid volume type: %s", errs.Message(err))
			}
			return nil, err
		}
	}
	fields := uploadImageFields(v, u, versionOf(r))
	fields["id"] = p.ImageID
	asked = true
	img, err = gc.CreateImage(ctx, c.Token, fields)
	if err != nil {
		if k := errs.KindOf(err); k != errs.Other && k != errs.Unauthorized && k != errs.Unavailable {
			err = errs.E(errs.Invalid, "%s", errs.Message(err))
		}
		return nil, imageServiceError(err)
	}
	if err := s.deps.DB.InTx(bg, func(tx *db.Tx) error { return tk.Handoff(bg, tx) }); err != nil {
		// The task is still this node's until Release lets its lease run
		// out; then any node resumes it (the image exists), so the upload
		// is accepted all the same.
		s.deps.Logger.Warn("handing off an upload", "volume", v.ID, "task", tk.ID, "err", err)
	}
	return img, nil
}

// uploadImageFields are the new image's fields: the request's, then the
// volume's image metadata outside Glance's core properties and reserved
// namespaces.
func uploadImageFields(v *vol, u *uploadRequest, mv microversion) map[string]any {
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
	return fields
}

// uploadView is Cinder's 202 body of os-volume_upload_image.
func uploadView(v *vol, t *volType, img *glanceclient.Image, u *uploadRequest) map[string]any {
	var vt any
	if t != nil {
		vt = map[string]any{"id": t.ID, "name": t.Name, "description": t.Description, "is_public": t.IsPublic,
			"extra_specs": t.ExtraSpecs, "qos_specs_id": nil, "created_at": fmtTime(t.CreatedAt),
			"updated_at": fmtTime(t.UpdatedAt), "deleted_at": nil, "deleted": false}
	}
	visibility := img.Visibility
	if visibility == "" {
		visibility = u.Visibility
	}
	return map[string]any{
		"id": v.ID, "updated_at": fmtTime(v.UpdatedAt), "status": "uploading", "display_description": v.Description,
		"size": v.Size, "volume_type": vt, "image_id": img.ID, "container_format": u.ContainerFormat,
		"disk_format": u.DiskFormat, "image_name": u.ImageName, "protected": img.Protected, "visibility": visibility,
	}
}

// runUpload streams the volume to the image with X-Image-Meta-Store set to
// the type's store. On failure the image is deleted, the volume returns to
// its previous status and a user message records why.
func (s *Service) runUpload(ctx context.Context, w *work, v *vol, giveUp bool) error {
	if v.Status != "uploading" {
		return nil
	}
	prev := w.Payload.PreviousStatus
	if prev == "" {
		prev = "available"
	}
	gc, err := s.glanceForCaller(w.Payload.ImageEndpoint)
	if err == nil && giveUp {
		err = errs.E(errs.Other, "upload interrupted too often")
	}
	if err == nil {
		err = s.resumeUpload(ctx, gc, w, v)
	}
	if task.IsRetry(err) && !giveUp {
		return err
	}
	if err != nil {
		return s.failUpload(ctx, gc, w, v, prev, err)
	}
	return s.settle(ctx, w, nil, func(tx *db.Tx) error { return setStatus(ctx, tx, v.ID, prev, "uploading") })
}

// resumeUpload uploads the volume unless an earlier attempt, whose node
// died before it could say so, already made the image active. An image
// still saving is an earlier attempt's upload that the image service has
// not recovered yet: try again later (task.Retry).
func (s *Service) resumeUpload(ctx context.Context, gc glanceclient.Client, w *work, v *vol) error {
	if w.t.Attempt > 1 {
		img, err := gc.GetImage(ctx, w.Payload.Token, w.Payload.ImageID)
		switch {
		case err != nil:
			return err
		case img.Status == "active":
			return nil
		case img.Status == "saving":
			return task.Retry(errs.E(errs.Conflict, "image %s is still saving from an interrupted upload", img.ID))
		}
	}
	return s.uploadVolume(ctx, gc, w, v)
}

// uploadVolume streams the volume's data, in the requested format, into
// the image.
func (s *Service) uploadVolume(ctx context.Context, gc glanceclient.Client, w *work, v *vol) error {
	b := s.backendOf(v)
	if b == nil {
		return errs.E(errs.Unavailable, "volume backend not available")
	}
	dv, err := b.drv.Open(ctx, v.ID)
	if err != nil {
		return err
	}
	defer dv.Close()
	tmp, err := s.conversionDir()
	if err != nil {
		return err
	}
	p := w.Payload
	return upload.UploadWith(ctx, gc, dv, upload.Options{Token: p.Token, ImageID: p.ImageID, Store: p.Store,
		DiskFormat: p.DiskFormat, ContainerFormat: p.ContainerFormat, TempDir: tmp, Progress: w.progress})
}

// failUpload rolls a failed upload back: the image is deleted unless it
// became active, the volume returns to prev and a user message says why.
// When the service is shutting down nothing is rolled back: the next start
// resumes the upload.
func (s *Service) failUpload(ctx context.Context, gc glanceclient.Client, w *work, v *vol, prev string, cause error) error {
	if ctx.Err() != nil {
		return cause
	}
	bg := context.WithoutCancel(ctx)
	p := w.Payload
	if gc != nil {
		if img, err := gc.GetImage(bg, p.Token, p.ImageID); err == nil && (img.Status == "queued" || img.Status == "saving") {
			_ = gc.DeleteImage(bg, p.Token, p.ImageID)
		}
	}
	if err := s.settle(ctx, w, cause, func(tx *db.Tx) error { return setStatus(ctx, tx, v.ID, prev, "uploading") }); err != nil {
		return err
	}
	event, msg := eventUploadImage, "copy volume to image:Failed to upload volume to image at backend."
	if errs.KindOf(cause) == errs.TooLarge {
		event, msg = eventUploadQuota, "copy volume to image:Not enough quota resource for operation."
	}
	s.recordMessage(bg, v.ProjectID, v.ID, w.RequestID, event, msg)
	return cause
}
