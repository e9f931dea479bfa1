package volume

// Volumes made from a snapshot or cloned from a volume: what the new
// volume takes from its source, and Cinder's checks of the request.

import (
	"context"
	"net/http"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// fromSnapshot makes v a volume from snapshot id: the snapshot's size,
// type and volume's zone unless the request says otherwise, and, when the
// snapshot's volume is bootable, bootable with the image metadata the
// snapshot kept (Cinder's volume_glance_metadata of a snapshot). It
// returns the backend holding the snapshot, where the volume goes.
func (s *Service) fromSnapshot(r *http.Request, v *vol, id string) (string, error) {
	ctx := r.Context()
	sn, err := getSnapshot(ctx, s.deps.DB, id)
	if err == nil && sn.ProjectID != caller(r).ProjectID && !caller(r).IsAdmin() {
		err = snapshotNotFound(id)
	}
	if err == nil {
		err = enforce(r, "volume:get_snapshot", sn.ProjectID)
	}
	if err != nil {
		return "", err
	}
	if sn.Status != "available" {
		return "", errs.E(errs.Invalid, "Invalid snapshot: Originating snapshot status must be one of 'available' values")
	}
	if v.Size == 0 {
		v.Size = sn.VolumeSize
	}
	if v.Size < sn.VolumeSize {
		return "", errs.E(errs.Invalid, "Invalid input received: Volume size '%d'GB cannot be smaller than the snapshot size %dGB. They must be >= original snapshot size.", v.Size, sn.VolumeSize)
	}
	src, err := getVolumeRow(ctx, s.deps.DB, sn.VolumeID)
	if err != nil {
		return "", err
	}
	v.SnapshotID, v.TypeID, v.AZ, v.Bootable = &sn.ID, sn.TypeID, src.AZ, src.Bootable
	if src.Bootable {
		for k, val := range sn.ImageMetadata {
			v.ImageMetadata[k] = val
		}
	}
	return deref(src.Host), nil
}

// checkSourceType refuses a type for a clone or a volume from a snapshot
// that the source's backend cannot serve, as Cinder's _retype_is_possible:
// any type when there is one backend, else the source's type or one with
// the same volume_backend_name.
func (s *Service) checkSourceType(ctx context.Context, req *createRequest, srcType, typeID *string) error {
	if req.VolumeType == nil || srcType == nil || typeID == nil || *srcType == *typeID || len(s.backends) == 1 {
		return nil
	}
	src, err := typeByID(ctx, s.deps.DB, *srcType)
	if err != nil {
		return err
	}
	dst, err := typeByID(ctx, s.deps.DB, *typeID)
	if err != nil {
		return err
	}
	if name := src.ExtraSpecs["volume_backend_name"]; name != "" && name == dst.ExtraSpecs["volume_backend_name"] {
		return nil
	}
	if req.SnapshotID != nil {
		return errs.E(errs.Invalid, "Invalid input received: Invalid volume_type provided: %s (requested type is not compatible; recommend omitting the type argument).", *typeID)
	}
	return errs.E(errs.Invalid, "Invalid input received: Invalid volume_type provided: %s (requested type is not compatible; either match source volume, or omit type argument).", *typeID)
}

// sameSourceAZ puts a clone or a volume from a snapshot in its source's
// zone srcAZ ("" for other volumes) unless the request named one, which
// must then be the source's (Cinder's cloned_volume_same_az).
func sameSourceAZ(req *createRequest, v *vol, srcAZ string) error {
	switch {
	case srcAZ == "":
	case req.AZ == nil:
		v.AZ = srcAZ
	case *req.AZ != srcAZ && req.SnapshotID != nil:
		return errs.E(errs.Invalid, "Invalid input received: Volume must be in the same availability zone as the snapshot")
	case *req.AZ != srcAZ:
		return errs.E(errs.Invalid, "Invalid input received: Volume must be in the same availability zone as the source volume")
	}
	return nil
}

// lockCreationSource holds, in the transaction recording v, its source
// snapshot in available or its source volume in available or in-use: a
// source that left them since it was checked (its delete began) refuses
// the volume, and a delete beginning later sees the volume (which the
// snapshot's deletion then waits for).
func lockCreationSource(ctx context.Context, tx *db.Tx, v *vol) error {
	switch {
	case v.SnapshotID != nil:
		ok, err := lockSnapshotIn(ctx, tx, *v.SnapshotID, "available")
		if err == nil && !ok {
			err = errs.E(errs.Invalid, "Invalid snapshot: Originating snapshot status must be one of 'available' values")
		}
		return err
	case v.SourceVolID != nil:
		ok, err := lockVolumeIn(ctx, tx, *v.SourceVolID, "available", "in-use")
		if err == nil && !ok {
			err = errs.E(errs.Invalid, "Invalid volume: Originating source volume status must be one of 'available, in-use' values")
		}
		return err
	}
	return nil
}
