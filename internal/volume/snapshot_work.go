package volume

// The durable work of snapshots (internal/task, as in work.go): making and
// deleting a snapshot, a volume made from one, a revert, a cascade delete.
// Each task finishes in the transaction that moves its objects out of
// their transitional status (settle), fenced by its lease; a failure in
// the driver leaves the source untouched and the new object in error.

import (
	"context"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/task"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// Kinds of snapshot work. The first two have a snapshot for subject, the
// others a volume.
const (
	workSnapshot       = "volume.snapshot"
	workSnapshotDelete = "volume.snapshot_delete"
	workFromSnapshot   = "volume.from_snapshot"
	workRevert         = "volume.revert"
	workDeleteCascade  = "volume.delete_cascade"
)

// User message events of snapshot work, after Cinder's message_field.
const (
	eventCreateFromBackend = "VOLUME_VOLUME_008_012"
	eventSnapshotCreate    = "VOLUME_VOLUME_SNAPSHOT_009_013"
	eventSnapshotDelete    = "VOLUME_VOLUME_SNAPSHOT_010_016"
)

// The user messages of failed snapshot work.
const (
	msgCreateFromBackend = "create volume from backend storage:Driver failed to create the volume."
	msgSnapshotCreate    = "create snapshot:Snapshot failed to create."
	msgSnapshotDelete    = "delete snapshot:Snapshot failed to delete."
)

// runSnapshotWork runs (or, giving up, fails) one claimed snapshot task.
// A snapshot that is gone (force-deleted) has nothing left to do.
func (s *Service) runSnapshotWork(ctx context.Context, t *task.Task, giveUp bool) error {
	sn, err := getSnapshotRow(ctx, s.deps.DB, t.Subject)
	if errs.KindOf(err) == errs.NotFound {
		return nil
	}
	if err != nil {
		return task.Retry(err)
	}
	w := &work{VolumeID: sn.VolumeID, Kind: t.Kind, RequestID: t.RequestID, t: t}
	if err := t.Decode(&w.Payload); err != nil {
		return err
	}
	if t.Kind == workSnapshotDelete {
		return s.runSnapshotDelete(ctx, w, sn, giveUp)
	}
	return s.runSnapshotCreate(ctx, w, sn, giveUp)
}

// snapshotBackend returns the backend holding volume volumeID (and so its
// snapshots).
func (s *Service) snapshotBackend(ctx context.Context, volumeID string) (*vol, *backend, error) {
	v, err := getVolume(ctx, s.deps.DB, volumeID)
	if err != nil {
		return nil, nil, err
	}
	b := s.backendOf(v)
	if b == nil {
		return v, nil, errs.E(errs.Unavailable, "the backend of volume %s is not available", volumeID)
	}
	return v, b, nil
}

// runSnapshotCreate makes a creating snapshot on its volume's backend and
// marks it available, keeping a bootable volume's image metadata with it.
func (s *Service) runSnapshotCreate(ctx context.Context, w *work, sn *snapshot, giveUp bool) error {
	if sn.Status != "creating" {
		return nil
	}
	if giveUp {
		return s.failSnapshot(ctx, w, sn, "creating", "error", eventSnapshotCreate, msgSnapshotCreate,
			errs.E(errs.Other, "snapshot creation interrupted too often"))
	}
	v, b, err := s.snapshotBackend(ctx, sn.VolumeID)
	if err == nil {
		err = b.drv.CreateSnapshot(ctx, v.ID, sn.ID)
		if errs.KindOf(err) == errs.Conflict {
			err = nil // an earlier attempt, cut off, made it: a snapshot appears whole or not at all
		}
	}
	if err != nil {
		return s.failSnapshot(ctx, w, sn, "creating", "error", eventSnapshotCreate, msgSnapshotCreate, err)
	}
	var created bool
	err = s.settle(ctx, w, nil, func(tx *db.Tx) error {
		ok, err := markSnapshotCreated(ctx, tx, sn.ID)
		if created = ok; err != nil || !ok || !v.Bootable {
			return err
		}
		return putKV(ctx, tx, setSnapshotImageMetadata, sn.ID, v.ImageMetadata)
	})
	if err != nil || created {
		return err
	}
	// Force-deleted while it was being made: its data goes too.
	if _, gerr := getSnapshotRow(ctx, s.deps.DB, sn.ID); errs.KindOf(gerr) == errs.NotFound {
		if derr := b.drv.DeleteSnapshot(context.WithoutCancel(ctx), v.ID, sn.ID); derr != nil && errs.KindOf(derr) != errs.NotFound {
			return derr
		}
	}
	return nil
}

// failSnapshot moves the snapshot from status from to status to with a
// user message, unless the work was cut off (its node stopping, its lease
// lost): then it is resumed by the next claim.
func (s *Service) failSnapshot(ctx context.Context, w *work, sn *snapshot, from, to, event, msg string, cause error) error {
	if ctx.Err() != nil {
		return cause
	}
	err := s.settle(ctx, w, cause, func(tx *db.Tx) error {
		_, err := setSnapshotStatus(ctx, tx, sn.ID, to, from)
		return err
	})
	if err != nil {
		return err
	}
	s.recordResourceMessage(context.WithoutCancel(ctx), sn.ProjectID, "VOLUME_SNAPSHOT", sn.ID, w.RequestID, event, msg)
	return cause
}

// runSnapshotDelete deletes a deleting snapshot's data, then its row.
func (s *Service) runSnapshotDelete(ctx context.Context, w *work, sn *snapshot, giveUp bool) error {
	if sn.Status != "deleting" {
		return nil
	}
	err := errs.E(errs.Other, "snapshot deletion interrupted too often")
	if !giveUp {
		err = s.destroySnapshot(ctx, sn)
	}
	if err != nil {
		return s.failSnapshot(ctx, w, sn, "deleting", "error_deleting", eventSnapshotDelete, msgSnapshotDelete, err)
	}
	return s.settle(ctx, w, nil, func(tx *db.Tx) error { return s.dropSnapshotRow(ctx, tx, sn.ID) })
}

// destroySnapshot deletes a snapshot's data once nothing works on it any
// more: no volume is being made from it (a driver need not keep a
// snapshot that is read) and no task is making it (force-deleted while
// being made: the data it is writing would outlive the row).
func (s *Service) destroySnapshot(ctx context.Context, sn *snapshot) error {
	for {
		busy, err := s.snapshotBusy(ctx, sn.ID)
		if err != nil || !busy {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(snapshotBusyPoll):
		}
	}
	_, b, err := s.snapshotBackend(ctx, sn.VolumeID)
	if err != nil {
		return err
	}
	if err := b.drv.DeleteSnapshot(ctx, sn.VolumeID, sn.ID); err != nil && errs.KindOf(err) != errs.NotFound {
		return err
	}
	return nil
}

// snapshotBusy reports whether a volume is being made from the snapshot
// or a task is making it.
func (s *Service) snapshotBusy(ctx context.Context, id string) (bool, error) {
	if busy, err := volumeCreatingFrom(ctx, s.deps.DB, id); err != nil || busy {
		return busy, err
	}
	tasks, err := task.List(ctx, s.deps.DB, id, 100)
	if err != nil {
		return false, err
	}
	for _, t := range tasks {
		if t.Kind == workSnapshot && t.State == task.Running {
			return true, nil
		}
	}
	return false, nil
}

// snapshotBusyPoll is how often a snapshot's deletion looks again whether
// volumes are still being made from it.
var snapshotBusyPoll = 500 * time.Millisecond

// runRevert makes a reverting volume's data its snapshot's. Both return to
// available; a failure leaves the volume in error and the snapshot
// available, as in Cinder.
func (s *Service) runRevert(ctx context.Context, w *work, v *vol, giveUp bool) error {
	if v.Status != "reverting" {
		return nil
	}
	err := errs.E(errs.Other, "revert interrupted too often")
	if !giveUp {
		err = errs.E(errs.Unavailable, "the backend of volume %s is not available", v.ID)
		if b := s.backendOf(v); b != nil {
			err = b.drv.Revert(ctx, v.ID, w.Payload.SnapshotID)
		}
	}
	if err != nil && ctx.Err() != nil {
		return err // resumed by the next claim: a revert can run again
	}
	volStatus := "available"
	if err != nil {
		volStatus = "error"
	}
	serr := s.settle(ctx, w, err, func(tx *db.Tx) error {
		// (a volume reset meanwhile keeps the status it was given)
		if err := setStatus(ctx, tx, v.ID, volStatus, "reverting"); err != nil && errs.KindOf(err) != errs.Invalid {
			return err
		}
		_, err := setSnapshotStatus(ctx, tx, w.Payload.SnapshotID, "available", "restoring")
		return err
	})
	if serr != nil {
		return serr
	}
	return err
}

// runDeleteCascade deletes a deleting volume's snapshots, then the
// volume. Each snapshot is gone for good once deleted, so an attempt cut
// off resumes with those left. A failure leaves the volume and the
// snapshots left in error_deleting.
func (s *Service) runDeleteCascade(ctx context.Context, w *work, v *vol, giveUp bool) error {
	if v.Status != "deleting" {
		return nil
	}
	err := errs.E(errs.Other, "cascade delete interrupted too often")
	if !giveUp {
		err = s.deleteSnapshotsOf(ctx, v)
	}
	if err == nil {
		if b := s.backendOf(v); b != nil {
			if err = b.drv.Delete(ctx, v.ID); errs.KindOf(err) == errs.NotFound {
				err = nil
			}
		}
	}
	if err != nil && ctx.Err() != nil {
		return err
	}
	if err != nil {
		serr := s.settle(ctx, w, err, func(tx *db.Tx) error {
			if err := forceStatus(ctx, tx, v.ID, "error_deleting"); err != nil {
				return err
			}
			return setVolumeSnapshotsStatus(ctx, tx, v.ID, "error_deleting")
		})
		if serr != nil {
			return serr
		}
		return err
	}
	return s.settle(ctx, w, nil, func(tx *db.Tx) error { return s.dropVolumeRow(ctx, tx, v.ID) })
}

// deleteSnapshotsOf deletes every snapshot of v, data then row.
func (s *Service) deleteSnapshotsOf(ctx context.Context, v *vol) error {
	snaps, err := volumeSnapshots(ctx, s.deps.DB, v.ID)
	if err != nil {
		return err
	}
	for _, sn := range snaps {
		if err := s.destroySnapshot(ctx, sn); err != nil {
			return err
		}
		if err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error { return s.dropSnapshotRow(ctx, tx, sn.ID) }); err != nil {
			return err
		}
	}
	return nil
}

// sweepSnapshotOrphans deletes backend snapshots that have no row: a
// snapshot's row is written before its data and removed after it, so
// data without a row was left by a process stopped between a
// force-delete and the end of that snapshot's creation. Failures are
// logged; the next start tries again.
func (s *Service) sweepSnapshotOrphans(ctx context.Context) {
	for _, b := range s.backends {
		l, ok := b.drv.(driver.SnapshotLister)
		if !ok {
			continue
		}
		refs, err := l.ListSnapshots(ctx)
		if err != nil {
			s.deps.Logger.Error("listing backend snapshots", "backend", b.cfg.Name, "err", err)
			continue
		}
		for _, ref := range refs {
			if _, err := getSnapshotRow(ctx, s.deps.DB, ref.SnapshotID); errs.KindOf(err) != errs.NotFound {
				continue // has a row (or the lookup failed: keep it)
			}
			if err := b.drv.DeleteSnapshot(ctx, ref.VolumeID, ref.SnapshotID); err != nil && errs.KindOf(err) != errs.NotFound {
				s.deps.Logger.Error("deleting orphaned snapshot data", "backend", b.cfg.Name, "snapshot", ref.SnapshotID, "err", err)
				continue
			}
			s.deps.Logger.Warn("deleted snapshot data without a snapshot", "backend", b.cfg.Name, "snapshot", ref.SnapshotID)
		}
	}
}
