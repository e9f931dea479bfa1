package volume

// The durable work of backups (internal/task, as in work.go): making,
// restoring and deleting a backup. Each task finishes in the transaction
// that moves the backup and its volume out of their transitional status
// (settle), fenced by its lease. A node that dies mid-way has its task
// claimed again once the lease runs out: a backup is made again from the
// start (its objects from the cut-off attempt are removed first), a
// restore is run again (the volume's bytes are replaced only when a
// restore is complete), a delete resumes.

import (
	"context"
	"encoding/json"
	"maps"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/task"
	"github.com/ashlar-dev/ashlar/internal/volume/backup"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// Kinds of backup work; their subject is the backup.
const (
	workBackup        = "volume.backup"
	workBackupRestore = "volume.backup_restore"
	workBackupDelete  = "volume.backup_delete"
)

// User message events of backup work, after Cinder's message_field.
const (
	eventBackupCreate  = "VOLUME_BACKUP_013_020"
	eventBackupDelete  = "VOLUME_BACKUP_014_025"
	eventBackupRestore = "VOLUME_BACKUP_015_026"
	msgBackupCreate    = "create backup:Backup driver failed to create backup."
	msgBackupDelete    = "delete backup:Backup driver failed to delete backup."
	msgBackupRestore   = "restore backup:Backup driver failed to restore backup."
)

// backupMeta is what a backup keeps of its volume in its manifest, for
// the volume a restore writes (Cinder backs up the volume's metadata).
type backupMeta struct {
	Metadata      map[string]string `json:"metadata,omitempty"`
	ImageMetadata map[string]string `json:"image_metadata,omitempty"`
	Bootable      bool              `json:"bootable,omitempty"`
}

// runBackupWork runs (or, giving up, fails) one claimed backup task. A
// backup that is gone (force-deleted) has nothing left to do.
func (s *Service) runBackupWork(ctx context.Context, t *task.Task, giveUp bool) error {
	b, err := getBackup(ctx, s.deps.DB, t.Subject)
	if errs.KindOf(err) == errs.NotFound {
		return nil
	}
	if err != nil {
		return task.Retry(err)
	}
	w := &work{VolumeID: b.VolumeID, Kind: t.Kind, RequestID: t.RequestID, t: t}
	if err := t.Decode(&w.Payload); err != nil {
		return err
	}
	if s.backups == nil {
		return s.failBackup(ctx, w, b, errNoBackupService)
	}
	switch t.Kind {
	case workBackupRestore:
		return s.runBackupRestore(ctx, w, b, giveUp)
	case workBackupDelete:
		return s.runBackupDelete(ctx, w, b, giveUp)
	}
	return s.runBackupCreate(ctx, w, b, giveUp)
}

// runBackupCreate backs a creating backup's volume (or snapshot) up.
func (s *Service) runBackupCreate(ctx context.Context, w *work, b *backupRow, giveUp bool) error {
	if b.Status != "creating" {
		return nil
	}
	if giveUp {
		return s.failBackup(ctx, w, b, errs.E(errs.Other, "backup interrupted too often"))
	}
	// An attempt cut off (a node that died) may have left objects.
	if err := s.backups.Delete(ctx, b.Container, b.Objects); err != nil {
		return s.failBackup(ctx, w, b, err)
	}
	m, err := s.makeBackup(ctx, w, b)
	if err != nil {
		return s.failBackup(ctx, w, b, err)
	}
	var created bool
	err = s.settle(ctx, w, nil, func(tx *db.Tx) error {
		var err error
		if created, err = markBackupCreated(ctx, tx, b.ID, int64(m.Objects()), m.StoredBytes()); err != nil {
			return err
		}
		return s.releaseBackupSource(ctx, tx, b)
	})
	if err != nil || created {
		return err
	}
	// Force-deleted while it was being made: its objects go too.
	if _, gerr := getBackupRow(ctx, s.deps.DB, b.ID); errs.KindOf(gerr) == errs.NotFound {
		return s.backups.Delete(context.WithoutCancel(ctx), b.Container, b.Objects)
	}
	return nil
}

// makeBackup reads the backup's volume or snapshot through its backend's
// driver and stores it, counting the bytes done as the task's progress.
func (s *Service) makeBackup(ctx context.Context, w *work, b *backupRow) (*backup.Manifest, error) {
	v, err := getVolume(ctx, s.deps.DB, b.VolumeID)
	if err != nil {
		return nil, err
	}
	be := s.backendOf(v)
	if be == nil {
		return nil, errs.E(errs.Unavailable, "the backend of volume %s is not available", v.ID)
	}
	var src driver.Volume
	if b.SnapshotID != nil {
		src, err = be.drv.OpenSnapshot(ctx, v.ID, *b.SnapshotID)
	} else {
		src, err = be.drv.Open(ctx, v.ID)
	}
	if err != nil {
		return nil, err
	}
	defer src.Close()
	var parent *backup.Manifest
	if b.ParentID != nil {
		p, err := getBackupRow(ctx, s.deps.DB, *b.ParentID)
		if err != nil {
			return nil, err
		}
		if parent, err = s.backups.Manifest(ctx, p.Container, p.Objects); err != nil {
			return nil, err
		}
	}
	meta, err := json.Marshal(backupMeta{Metadata: v.Metadata, ImageMetadata: v.ImageMetadata, Bootable: v.Bootable})
	if err != nil {
		return nil, err
	}
	w.t.SetTotal(src.Size())
	return s.backups.Backup(ctx, b.Container, b.Objects, backup.Source{Volume: src, VolumeID: v.ID, Parent: parent, Meta: meta},
		func(n int64) { w.t.Add(n) })
}

// releaseBackupSource returns the backed-up volume to the status it had
// (Cinder's previous_status) or the snapshot to available; a status reset
// meanwhile is kept.
func (s *Service) releaseBackupSource(ctx context.Context, tx *db.Tx, b *backupRow) error {
	if b.SnapshotID != nil {
		_, err := setSnapshotStatus(ctx, tx, *b.SnapshotID, "available", "backing-up")
		return err
	}
	prev := "available"
	if b.PreviousStatus != nil {
		prev = *b.PreviousStatus
	}
	if err := setStatus(ctx, tx, b.VolumeID, prev, "backing-up"); err != nil && errs.KindOf(err) != errs.Invalid {
		return err
	}
	return nil
}

// failBackup puts a creating backup in error with the cause as its
// fail_reason and a user message, its volume back to its status, unless
// the work was cut off (its node stopping, its lease lost): then the next
// claim makes the backup again.
func (s *Service) failBackup(ctx context.Context, w *work, b *backupRow, cause error) error {
	if ctx.Err() != nil {
		return cause
	}
	event, msg := eventBackupCreate, msgBackupCreate
	switch w.Kind {
	case workBackupDelete:
		event, msg = eventBackupDelete, msgBackupDelete
	case workBackupRestore:
		event, msg = eventBackupRestore, msgBackupRestore
	}
	err := s.settle(ctx, w, cause, func(tx *db.Tx) error {
		if _, err := failBackupRow(ctx, tx, b.ID, b.Status, errs.Message(cause)); err != nil {
			return err
		}
		if w.Kind == workBackup {
			if err := s.releaseBackupSource(ctx, tx, b); err != nil {
				return err
			}
		}
		return insertMessage(ctx, tx, backupMessage(b, w.RequestID, event, msg))
	})
	if err != nil {
		return err
	}
	return cause
}

// backupMessage is the user message of a backup's failed work, stored in
// the transaction that records the failure: whoever sees the backup's
// failed status finds the message too.
func backupMessage(b *backupRow, requestID, event, text string) *message {
	return newMessage(b.ProjectID, "VOLUME_BACKUP", b.ID, requestID, event, text)
}

// runBackupRestore writes a restoring backup into its volume, which is in
// restoring-backup (or creating, a volume created from the backup). Both
// become available; a failure leaves the volume in error_restoring (in
// error when it was created from the backup) and the backup available, as
// in Cinder. A volume restored from another volume's backup records it
// in its metadata (src_backup_id), as Cinder does.
func (s *Service) runBackupRestore(ctx context.Context, w *work, b *backupRow, giveUp bool) error {
	if b.Status != "restoring" {
		return nil
	}
	volumeID := w.Payload.VolumeID
	var meta backupMeta
	err := errs.E(errs.Other, "restore interrupted too often")
	if !giveUp {
		meta, err = s.restoreInto(ctx, w, b, volumeID)
	}
	if err != nil && ctx.Err() != nil {
		return err // resumed by the next claim: the volume's bytes are replaced whole or not at all
	}
	volStatus, from := "available", "restoring-backup"
	if w.Payload.NewVolume {
		from = "creating"
	}
	switch {
	case err != nil && w.Payload.NewVolume:
		volStatus = "error" // a volume created from the backup
	case err != nil:
		volStatus = "error_restoring"
	}
	serr := s.settle(ctx, w, err, func(tx *db.Tx) error {
		if _, err := setBackupStatus(ctx, tx, b.ID, "available", "restoring"); err != nil {
			return err
		}
		if err := setStatus(ctx, tx, volumeID, volStatus, from); err != nil {
			if errs.KindOf(err) == errs.Invalid {
				return nil // reset meanwhile: keeps the status it was given
			}
			return err
		}
		if volStatus != "available" {
			return insertMessage(ctx, tx, backupMessage(b, w.RequestID, eventBackupRestore, msgBackupRestore))
		}
		if old := meta.Metadata["src_backup_id"]; b.VolumeID != volumeID || old != "" && old != b.ID {
			meta.Metadata["src_backup_id"] = b.ID
		}
		if len(meta.Metadata) > 0 {
			if err := putKV(ctx, tx, setMetadata, volumeID, meta.Metadata); err != nil {
				return err
			}
		}
		if meta.Bootable {
			if err := setBootable(ctx, tx, volumeID, true); err != nil {
				return err
			}
			return putKV(ctx, tx, setImageMetadata, volumeID, meta.ImageMetadata)
		}
		return nil
	})
	if serr != nil {
		return serr
	}
	return err
}

// restoreInto replaces volume volumeID's bytes with the backup's, every
// chunk verified before it is written, and returns the volume's metadata
// the backup kept.
func (s *Service) restoreInto(ctx context.Context, w *work, b *backupRow, volumeID string) (backupMeta, error) {
	var meta backupMeta
	v, err := getVolume(ctx, s.deps.DB, volumeID)
	if err != nil {
		return meta, err
	}
	be := s.backendOf(v)
	if be == nil {
		return meta, errs.E(errs.Unavailable, "the backend of volume %s is not available", v.ID)
	}
	o, ok := be.drv.(driver.Overwriter)
	if !ok {
		return meta, errs.E(errs.Unavailable, "the backend of volume %s cannot be restored into", v.ID)
	}
	m, err := s.backups.Manifest(ctx, b.Container, b.Objects)
	if err != nil {
		return meta, err
	}
	if len(m.Meta) > 0 {
		if err := json.Unmarshal(m.Meta, &meta); err != nil {
			return meta, err
		}
	}
	meta.Metadata = maps.Clone(meta.Metadata)
	if meta.Metadata == nil {
		meta.Metadata = map[string]string{}
	}
	// The backup a volume was last restored from: the restored metadata's,
	// else the volume's own.
	if old, ok := v.Metadata["src_backup_id"]; ok && meta.Metadata["src_backup_id"] == "" {
		meta.Metadata["src_backup_id"] = old
	}
	w.t.SetTotal(m.Size)
	rd := s.backups.Restore(ctx, m)
	defer rd.Close()
	return meta, o.Overwrite(ctx, v.ID, w.t.Reader(rd))
}

// runBackupDelete deletes a deleting backup's objects, then its row. A
// failure leaves the backup in error with a user message.
func (s *Service) runBackupDelete(ctx context.Context, w *work, b *backupRow, giveUp bool) error {
	if b.Status != "deleting" {
		return nil
	}
	err := errs.E(errs.Other, "backup deletion interrupted too often")
	if !giveUp {
		err = s.backups.Delete(ctx, b.Container, b.Objects)
	}
	if err != nil {
		return s.failBackup(ctx, w, b, err)
	}
	return s.settle(ctx, w, nil, func(tx *db.Tx) error { return s.dropBackupRow(ctx, tx, b) })
}
