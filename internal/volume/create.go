package volume

import (
	"context"
	"net/http"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Creating a volume: the request records the volume (status creating) and
// the work that fills it in one transaction and answers 202; the work
// (runCreate) schedules the volume to a backend and writes its data.

// createRequest is a validated volume create body.
type createRequest struct {
	Name, Description *string
	// Size is in GiB; 0 when not given (then the source's size).
	Size     int64
	Metadata map[string]string
	// The volume's source, at most one honoured: a snapshot wins over a
	// source volume, which wins over an image, which wins over a backup
	// (as in Cinder's create flow). BackupID is nil before 3.47.
	SnapshotID, BackupID, SourceVolID, ImageRef *string
	VolumeType, AZ                              *string
}

func parseCreate(r *http.Request) (*createRequest, error) {
	in, err := decodeEntity(r, "volume")
	if err != nil {
		return nil, err
	}
	c := &createRequest{Metadata: map[string]string{}}
	if c.Name, err = firstNonNull(in, 255, "name", "display_name"); err != nil {
		return nil, err
	}
	if c.Description, err = firstNonNull(in, 255, "description", "display_description"); err != nil {
		return nil, err
	}
	if sz := in["size"]; sz != nil {
		if c.Size, err = parseSize(sz); err != nil {
			return nil, err
		}
	}
	if md := in["metadata"]; md != nil {
		if c.Metadata, err = parseMetadata("metadata", md); err != nil {
			return nil, err
		}
	}
	if ma := in["multiattach"]; ma != nil {
		// Cinder refuses the old request flag: multiattach comes from the
		// volume type alone.
		if multi, err := parseBool("multiattach", ma); err != nil {
			return nil, err
		} else if multi {
			return nil, errs.E(errs.Invalid, "multiattach parameter has been removed. The default behavior is to use multiattach enabled volume types. Contact your administrator to create a multiattach enabled volume type and use it to create multiattach volumes.")
		}
	}
	for _, f := range []struct {
		dst    **string
		fields []string
		max    int
	}{
		{&c.SnapshotID, []string{"snapshot_id"}, 0},
		{&c.SourceVolID, []string{"source_volid"}, 0},
		{&c.ImageRef, []string{"imageRef", "image_id"}, 0},
		{&c.VolumeType, []string{"volume_type"}, 255},
		{&c.AZ, []string{"availability_zone"}, 255},
	} {
		if *f.dst, err = firstNonNull(in, f.max, f.fields...); err != nil {
			return nil, err
		}
	}
	if c.BackupID, err = parseBackupID(r, in); err != nil {
		return nil, err
	}
	return c, nil
}

// firstNonNull reads the first of fields that is present and not null as
// a string of at most max characters (0: unlimited); nil when none is.
func firstNonNull(m map[string]any, max int, fields ...string) (*string, error) {
	for _, f := range fields {
		v, err := optString(m, f, max)
		if err != nil || v != nil {
			return v, err
		}
	}
	return nil, nil
}

func (s *Service) createVolume(w http.ResponseWriter, r *http.Request) error {
	if err := enforce(r, "volume:create", ""); err != nil {
		return err
	}
	req, err := parseCreate(r)
	if err != nil {
		return err
	}
	v := newVolume(caller(r), req)
	kind, payload, err := s.creationSource(r, v, req)
	if err != nil {
		return err
	}
	if v.Size == 0 {
		return errs.E(errs.Invalid, "Invalid input received: \"size\" is a required parameter when no source (snapshot, volume, image, backup) is given.")
	}
	// A clone and a volume from a snapshot take their source's zone and
	// type unless told otherwise (creationSource set them).
	srcAZ, srcType := v.AZ, v.TypeID
	if err := s.assignType(r, v, req.VolumeType); err != nil {
		return err
	}
	if err := s.checkSourceType(r.Context(), req, srcType, v.TypeID); err != nil {
		return err
	}
	if err := s.assignAZ(v, req.AZ); err != nil {
		return err
	}
	if err := sameSourceAZ(req, v, srcAZ); err != nil {
		return err
	}
	payload.Size, payload.AZ, payload.ProjectID = v.Size, v.AZ, v.ProjectID
	ctx := r.Context()
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if err := lockCreationSource(ctx, tx, v); err != nil {
			return err
		}
		if err := insertVolume(ctx, tx, v); err != nil {
			return err
		}
		if kind == workFromBackup {
			if err := lockBackupSource(ctx, tx, payload.BackupID, v.ID); err != nil {
				return err
			}
		}
		if err := s.chargeNewVolume(ctx, tx, v); err != nil {
			return err
		}
		return s.addWork(ctx, tx, v.ID, kind, payload)
	})
	if err != nil {
		return err
	}
	s.wake()
	return reply(w, http.StatusAccepted, map[string]any{"volume": s.volumeView(r, v, viewCreate)})
}

// newVolume is the volume a create request describes, before its source,
// type and availability zone are resolved.
func newVolume(c *auth.Caller, req *createRequest) *vol {
	return &vol{ID: uuid.NewString(), ProjectID: c.ProjectID, UserID: c.UserID, Status: "creating",
		AttachStatus: "detached", CreatedAt: db.Now(), Name: req.Name, Description: req.Description,
		Size: req.Size, Metadata: req.Metadata, ImageMetadata: map[string]string{}}
}

// creationSource checks the volume's source and takes from it what the
// volume inherits; it returns the kind of work that fills the volume.
func (s *Service) creationSource(r *http.Request, v *vol, req *createRequest) (string, workPayload, error) {
	var p workPayload
	switch {
	case req.SnapshotID != nil:
		host, err := s.fromSnapshot(r, v, *req.SnapshotID)
		p.SourceHost = host
		return workFromSnapshot, p, err
	case req.SourceVolID != nil:
		host, err := s.cloneFrom(r, v, *req.SourceVolID)
		p.SourceHost = host
		return workClone, p, err
	case req.ImageRef != nil:
		if err := s.prepareFromImage(r, v, *req.ImageRef); err != nil {
			return "", p, err
		}
		c := caller(r)
		p.ImageID, p.ImageEndpoint, p.Token = *req.ImageRef, c.EndpointURL("image", "public"), c.Token
		return workFromImage, p, nil
	case req.BackupID != nil:
		p.BackupID = *req.BackupID
		return workFromBackup, p, s.fromBackup(r, v, *req.BackupID)
	}
	return workCreate, p, nil
}

// cloneFrom makes v a clone of volume src (size, bootable, image metadata
// and type) and returns the backend holding src, where the clone goes.
func (s *Service) cloneFrom(r *http.Request, v *vol, src string) (string, error) {
	sv, err := getVolume(r.Context(), s.deps.DB, src)
	if errs.KindOf(err) == errs.NotFound || err == nil && !visible(r, sv) {
		return "", volumeNotFound(src)
	}
	if err != nil {
		return "", err
	}
	if sv.Status != "available" && sv.Status != "in-use" {
		return "", errs.E(errs.Invalid, "Invalid volume: Originating source volume status must be one of 'available, in-use' values")
	}
	if v.Size == 0 {
		v.Size = sv.Size
	}
	if v.Size < sv.Size {
		return "", errs.E(errs.Invalid, "Invalid input received: Volume size '%d'GB cannot be smaller than original volume size  %dGB. They must be >= original volume size.", v.Size, sv.Size)
	}
	v.SourceVolID, v.Bootable, v.TypeID, v.AZ = &src, sv.Bootable, sv.TypeID, sv.AZ
	for k, val := range sv.ImageMetadata {
		v.ImageMetadata[k] = val
	}
	return deref(sv.Host), nil
}

// assignType gives v the named type, else its source's, else the default
// one. A type whose multiattach spec is "<is> True" makes the volume
// multiattach, as in Cinder (which compares the spec exactly so).
func (s *Service) assignType(r *http.Request, v *vol, name *string) error {
	ctx := r.Context()
	var t *volType
	var err error
	switch {
	case name != nil:
		t, err = s.getType(ctx, s.deps.DB, r, *name, true)
		if errs.KindOf(err) == errs.NotFound {
			return errs.E(errs.NotFound, "Volume type with name %s could not be found.", *name)
		}
	case v.TypeID != nil:
		t, err = s.getType(ctx, s.deps.DB, nil, *v.TypeID, false)
	default:
		t, err = s.getType(ctx, s.deps.DB, nil, defaultTypeKey, false)
	}
	if err != nil {
		return err
	}
	v.TypeID, v.TypeName = &t.ID, &t.Name
	v.Multiattach = t.multiattach()
	return nil
}

// assignAZ puts v in the requested availability zone, else the default.
func (s *Service) assignAZ(v *vol, az *string) error {
	v.AZ = s.deps.Config.Volume.DefaultAvailabilityZone
	if az == nil {
		return nil
	}
	if !s.knownAZ(*az) {
		return errs.E(errs.Invalid, "Invalid input received: Availability zone '%s' is invalid.", *az)
	}
	v.AZ = *az
	return nil
}

// msgNoBackend is the user message of a volume no backend could take.
const msgNoBackend = "schedule allocate volume:Could not find any available weighted backend."

// runCreate schedules and creates a volume (blank, clone, from image, or
// empty for a backup's restore).
// Failures put the volume in error with a user message.
func (s *Service) runCreate(ctx context.Context, w *work, v *vol, giveUp bool) error {
	if v.Status != "creating" {
		if w.Kind == workFromBackup {
			// Reset or force-deleted before it was restored into: the
			// backup it held goes back to available.
			return releaseRestoringBackup(ctx, s.deps.DB, w.Payload.BackupID, v.ID)
		}
		return nil
	}
	if giveUp {
		return s.failCreate(ctx, w, v, eventScheduleAllocate, msgNoBackend, errs.E(errs.Other, "volume creation interrupted too often"))
	}
	b, err := s.placeVolume(ctx, w, v)
	if err != nil {
		return s.failCreate(ctx, w, v, eventScheduleAllocate, msgNoBackend, err)
	}
	if err := setHost(ctx, s.deps.DB, v.ID, b.cfg.Name); err != nil {
		return err
	}
	// A previous attempt may have left a partial volume.
	if err := b.drv.Delete(ctx, v.ID); err != nil && errs.KindOf(err) != errs.NotFound {
		return s.failCreate(ctx, w, v, eventScheduleAllocate, "create volume:Failed to create volume.", err)
	}
	bootable, err := s.writeVolumeData(ctx, w, b, v)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		_ = b.drv.Delete(context.WithoutCancel(ctx), v.ID)
		switch w.Kind {
		case workFromImage:
			return s.failCreate(ctx, w, v, eventCreateFromImage, "copy image to volume:Failed to copy image to volume.", err)
		case workClone, workFromSnapshot:
			return s.failCreate(ctx, w, v, eventCreateFromBackend, msgCreateFromBackend, err)
		}
		return s.failCreate(ctx, w, v, eventScheduleAllocate, "create volume:Failed to create volume.", err)
	}
	if w.Kind == workFromBackup {
		return s.handOverToRestore(ctx, w, b, v)
	}
	return s.finishCreate(ctx, w, b, v, bootable)
}

// failCreate puts the volume in error with a user message, unless the
// work was cut off (its node stopping or its lease lost): then it is
// resumed by the next claim.
func (s *Service) failCreate(ctx context.Context, w *work, v *vol, event, msg string, cause error) error {
	if ctx.Err() != nil {
		return cause
	}
	// The message lands with the error status: whoever sees one sees both.
	err := s.settle(ctx, w, cause, func(tx *db.Tx) error {
		if err := forceStatus(ctx, tx, v.ID, "error"); err != nil {
			return err
		}
		if w.Kind == workFromBackup {
			if err := releaseRestoringBackup(ctx, tx, w.Payload.BackupID, v.ID); err != nil {
				return err
			}
		}
		return insertMessage(ctx, tx, newMessage(v.ProjectID, "VOLUME", v.ID, w.RequestID, event, msg))
	})
	if err != nil {
		return err
	}
	return cause
}

// placeVolume picks the volume's backend: the backend of a clone's source
// or of a snapshot's volume, else the scheduler's choice for the volume's
// type.
func (s *Service) placeVolume(ctx context.Context, w *work, v *vol) (*backend, error) {
	if w.Kind == workClone || w.Kind == workFromSnapshot {
		if b := s.backendNamed(w.Payload.SourceHost); b != nil {
			return b, nil
		}
		return nil, errs.E(errs.Other, "source backend gone")
	}
	specs := map[string]string{}
	if v.TypeID != nil {
		if t, err := typeByID(ctx, s.deps.DB, *v.TypeID); err == nil {
			specs = t.ExtraSpecs
		}
	}
	return s.schedule(ctx, specs, v.AZ, v.Size)
}

// writeVolumeData creates the volume on b: empty, a copy of its source
// volume or snapshot, or the image's data. It reports whether the volume
// is bootable.
func (s *Service) writeVolumeData(ctx context.Context, w *work, b *backend, v *vol) (bool, error) {
	size := v.Size * gib
	switch w.Kind {
	case workClone:
		return v.Bootable, b.drv.Clone(ctx, *v.SourceVolID, v.ID, size)
	case workFromSnapshot:
		sn, err := getSnapshotRow(ctx, s.deps.DB, *v.SnapshotID)
		if err != nil {
			return false, err
		}
		return v.Bootable, b.drv.CreateFromSnapshot(ctx, sn.VolumeID, sn.ID, v.ID, size)
	case workFromImage:
		return true, s.copyImageToVolume(ctx, w, b, v)
	}
	return v.Bootable, b.drv.Create(ctx, v.ID, size)
}

// finishCreate marks the volume available. A volume force-deleted while
// its data was being written has no row any more: the data just written
// goes too.
func (s *Service) finishCreate(ctx context.Context, w *work, b *backend, v *vol, bootable bool) error {
	var created bool
	err := s.settle(ctx, w, nil, func(tx *db.Tx) error {
		var err error
		created, err = markCreated(ctx, tx, v.ID, bootable)
		return err
	})
	if err != nil || created {
		return err
	}
	return s.dropIfDeleted(ctx, b, v)
}

// dropIfDeleted deletes the data just written for v on b when v's row is
// gone (force-deleted while its data was being written).
func (s *Service) dropIfDeleted(ctx context.Context, b *backend, v *vol) error {
	if _, gerr := getVolumeRow(ctx, s.deps.DB, v.ID); errs.KindOf(gerr) == errs.NotFound {
		if derr := b.drv.Delete(context.WithoutCancel(ctx), v.ID); derr != nil && errs.KindOf(derr) != errs.NotFound {
			return derr
		}
	}
	return nil
}
