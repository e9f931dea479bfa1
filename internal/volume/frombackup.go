package volume

// A volume created from a backup (POST /volumes with backup_id, from
// microversion 3.47): the request checks the backup, records the volume
// (creating, its quota charged) and holds the backup in restoring, in one
// transaction, so the backup cannot be deleted before it is read. The
// create work (workFromBackup) places and creates an empty volume, then
// hands over to the backup's restore work (backup_work.go) in the
// transaction that moves the volume to restoring-backup: the bytes are
// written by the one restore path there, which returns both to
// available.

import (
	"context"
	"net/http"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/task"
)

// mvCreateFromBackup is the microversion from which backup_id creates a
// volume; earlier requests' backup_id is ignored, as in Cinder.
const mvCreateFromBackup = 47

// workFromBackup is the create work of a volume from a backup; its subject
// is the volume, its payload names the backup.
const workFromBackup = "volume.from_backup"

// parseBackupID validates a create request's backup_id at the request's
// microversion: a UUID or null from 3.47, ignored before.
func parseBackupID(r *http.Request, in map[string]any) (*string, error) {
	raw, ok := in["backup_id"]
	if !ok || raw == nil || versionOf(r) < mvCreateFromBackup {
		return nil, nil
	}
	id, ok := raw.(string)
	if !ok || !isUUID(id) {
		return nil, invalidInput("backup_id", raw, "%s is not valid under any of the given schemas", pyRepr(raw, true))
	}
	return &id, nil
}

// fromBackup checks that backup id can fill v (visible to the caller,
// available, no larger than v) and gives v the backup's size when the
// request named none.
func (s *Service) fromBackup(r *http.Request, v *vol, id string) error {
	ctx := r.Context()
	b, err := getBackup(ctx, s.deps.DB, id)
	if c := caller(r); err == nil && b.ProjectID != c.ProjectID && !c.IsAdmin() {
		err = backupNotFound(id)
	}
	if err != nil {
		return err
	}
	if err := enforce(r, "backup:get", b.ProjectID); err != nil {
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
var errBackupNotAvailable = errs.E(errs.Invalid, "Invalid backup: Backup status must be available.")

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

// handOverToRestore moves the new volume, created empty on b, from
// creating to restoring-backup and records the backup's restore work, in
// one transaction with the end of the create work. A volume that left
// creating meanwhile (force-deleted, or reset) releases the backup.
func (s *Service) handOverToRestore(ctx context.Context, w *work, b *backend, v *vol) error {
	started := true
	err := s.settle(ctx, w, nil, func(tx *db.Tx) error {
		if err := setStatus(ctx, tx, v.ID, "restoring-backup", "creating"); err != nil {
			if errs.KindOf(err) != errs.Invalid {
				return err
			}
			started = false
			return releaseRestoringBackup(ctx, tx, w.Payload.BackupID, v.ID)
		}
		_, err := s.tasks.Add(ctx, tx, task.Spec{Kind: workBackupRestore, Subject: w.Payload.BackupID,
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
