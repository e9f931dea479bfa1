package volume

// A volume created from a backup (POST /volumes with backup_id, the
// feature of microversion 3.47): the request checks the backup, records
// the volume (creating, its quota charged) and holds the backup in
// restoring, in one transaction, so the backup cannot be deleted before it
// is read. The create work (workFromBackup) places and creates an empty
// volume, then hands over to the backup's restore work (backup_work.go)
// in the transaction that ends it: the bytes are written by the one
// restore path there, which makes both available. As in Cinder, the
// volume stays creating until then (Cinder's restore takes a volume in
// creating or restoring-backup), and a failed restore leaves it in error.

import (
	"context"
	"net/http"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/task"
)

// mvCreateFromBackup is the microversion whose request schema declares
// backup_id (a UUID or null). Cinder honours backup_id at every
// microversion (the controller reads it whatever the version); before
// 3.47 it is just not validated, so an id that is not a UUID is a backup
// not found.
const mvCreateFromBackup = 47

// workFromBackup is the create work of a volume from a backup; its subject
// is the volume, its payload names the backup.
const workFromBackup = "volume.from_backup"

// parseBackupID reads a create request's backup_id: from 3.47 a UUID or
// null; before, any string (an empty one is none, as Cinder tests it for
// truth).
func parseBackupID(r *http.Request, in map[string]any) (*string, error) {
	raw, ok := in["backup_id"]
	if !ok || raw == nil {
		return nil, nil
	}
	id, ok := raw.(string)
	if versionOf(r) >= mvCreateFromBackup && (!ok || !isUUID(id)) {
		return nil, invalidInput("backup_id", raw, "%s is not valid under any of the given schemas", pyRepr(raw, true))
	}
	if !ok {
		return nil, errs.E(errs.NotFound, "Backup %s could not be found.", pyRepr(raw, false))
	}
	if id == "" {
		return nil, nil
	}
	return &id, nil
}

// fromBackup checks that backup id can fill v (visible to the caller,
// available, no larger than v) and gives v the backup's size when the
// request named none.
func (s *Service) fromBackup(r *http.Request, v *vol, id string) error {
	ctx := r.Context()
	b, err := loadOwned(ctx, s.deps.DB, r, id, "backup:get", getBackup, backupNotFound)
	if err != nil {
		return err
	}
	if b.Status != "available" {
		return errBackupNotAvailable
	}
	if s.backups == nil {
		return errNoBackupService
	}
	if v.Size == 0 {
		v.Size = b.Size
	}
	if v.Size < b.Size {
		return errs.E(errs.Invalid, "Invalid input received: Volume size %dGB cannot be smaller than the backup size %dGB. It must be >= backup size.", v.Size, b.Size)
	}
	return nil
}

// errBackupNotAvailable refuses a volume from a backup that is not
// available (being made, restored, deleted, or in error).
var errBackupNotAvailable = errs.E(errs.Invalid, "Invalid backup: Originating backup status must be one of 'available' values")

// lockBackupSource moves backup id to restoring into volume volumeID in
// the transaction recording the volume; a backup that left available
// since it was checked refuses the volume.
func lockBackupSource(ctx context.Context, tx *db.Tx, id, volumeID string) error {
	ok, err := beginBackupRestore(ctx, tx, id, volumeID)
	if err == nil && !ok {
		err = errBackupNotAvailable
	}
	return err
}

// handOverToRestore records the backup's restore into the new volume,
// created empty on b, in one transaction with the end of the create work;
// the volume stays creating. A volume that left creating meanwhile
// (force-deleted, or reset) releases the backup instead.
func (s *Service) handOverToRestore(ctx context.Context, w *work, b *backend, v *vol) error {
	started := true
	err := s.settle(ctx, w, nil, func(tx *db.Tx) error {
		ok, err := lockVolumeIn(ctx, tx, v.ID, "creating")
		if err != nil {
			return err
		}
		if !ok {
			started = false
			return releaseRestoringBackup(ctx, tx, w.Payload.BackupID, v.ID)
		}
		_, err = s.tasks.Add(ctx, tx, task.Spec{Kind: workBackupRestore, Subject: w.Payload.BackupID,
			Payload:   workPayload{ProjectID: w.Payload.ProjectID, VolumeID: v.ID, NewVolume: true},
			RequestID: w.RequestID, ProjectID: w.Payload.ProjectID})
		return err
	})
	if err != nil {
		return err
	}
	if !started {
		return s.dropIfDeleted(ctx, b, v)
	}
	s.wake()
	return nil
}
