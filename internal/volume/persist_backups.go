package volume

// Persistence of backups: the backups table and a backup's metadata.
// Every SQL statement about backup rows is here.

import (
	"context"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// backupRow is a backup row with its metadata.
type backupRow struct {
	ID, ProjectID, UserID, VolumeID string
	SnapshotID, ParentID            *string
	Name, Description               *string
	Status                          string
	FailReason                      *string
	AZ                              *string
	Container                       string
	// Objects names the backup's objects in its container (Cinder's
	// service_metadata): the id it was made under.
	Objects string
	// Size is the volume's size in GiB when it was backed up.
	Size int64
	// ObjectCount and StoredBytes count the backup's own objects.
	ObjectCount, StoredBytes int64
	RestoreVolumeID          *string
	// PreviousStatus is the status the volume (or snapshot) being backed
	// up, or the backup being restored, returns to.
	PreviousStatus       *string
	DataTimestamp        db.Timestamp
	CreatedAt, UpdatedAt db.Timestamp
	Metadata             map[string]string
	// HasDependents reports that an incremental backup builds on it.
	HasDependents bool
}

// setBackupMetadata is the key/value set of a backup (3.43).
var setBackupMetadata = kvSet{"backup_metadata", "backup_id"}

func (b *backupRow) owner() string { return b.ID }

func (b *backupRow) kv(kvSet) map[string]string { return b.Metadata }

func (b *backupRow) setKV(_ kvSet, m map[string]string) { b.Metadata = m }

const backupCols = `b.id, b.project_id, b.user_id, b.volume_id, b.snapshot_id, b.parent_id, b.name, b.description,
	b.status, b.fail_reason, b.availability_zone, b.container, b.service_metadata, b.size, b.object_count, b.stored_bytes,
	b.restore_volume_id, b.previous_status, b.data_timestamp, b.created_at, b.updated_at,
	EXISTS (SELECT 1 FROM backups d WHERE d.parent_id = b.id)`

func scanBackup(sc db.Row) (*backupRow, error) {
	b := &backupRow{}
	err := sc.Scan(&b.ID, &b.ProjectID, &b.UserID, &b.VolumeID, &b.SnapshotID, &b.ParentID, &b.Name, &b.Description,
		&b.Status, &b.FailReason, &b.AZ, &b.Container, &b.Objects, &b.Size, &b.ObjectCount, &b.StoredBytes,
		&b.RestoreVolumeID, &b.PreviousStatus, &b.DataTimestamp, &b.CreatedAt, &b.UpdatedAt, &b.HasDependents)
	return b, err
}

// backupNotFound is Cinder's 404 for a backup id.
func backupNotFound(id string) error {
	return errs.E(errs.NotFound, "Backup %s could not be found.", id)
}

// getBackup loads a backup and its metadata without access checks.
func getBackup(ctx context.Context, q db.Querier, id string) (*backupRow, error) {
	return getWith(ctx, q, id, getBackupRow, loadBackupKVs)
}

// loadBackupKVs fills the metadata of backups with one query.
func loadBackupKVs(ctx context.Context, q db.Querier, backups []*backupRow) error {
	return loadKVSets(ctx, q, backups, setBackupMetadata)
}

// getBackupRow loads a backup's row without its metadata.
func getBackupRow(ctx context.Context, q db.Querier, id string) (*backupRow, error) {
	return rowByID(ctx, q, scanBackup, backupNotFound, `SELECT `+backupCols+` FROM backups b WHERE b.id = ?`, id)
}

// insertBackup writes a new backup's row and metadata.
func insertBackup(ctx context.Context, tx *db.Tx, b *backupRow) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO backups (id, project_id, user_id, volume_id, snapshot_id, parent_id,
		name, description, status, availability_zone, container, service_metadata, size, previous_status, data_timestamp, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		b.ID, b.ProjectID, b.UserID, b.VolumeID, b.SnapshotID, b.ParentID, b.Name, b.Description, b.Status, b.AZ,
		b.Container, b.Objects, b.Size, b.PreviousStatus, b.DataTimestamp, b.CreatedAt); err != nil {
		return err
	}
	return putKV(ctx, tx, setBackupMetadata, b.ID, b.Metadata)
}

// updateBackupText writes a backup's name, description and updated_at.
func updateBackupText(ctx context.Context, q db.Querier, b *backupRow) error {
	return updateRowText(ctx, q, "backups", b.ID, b.Name, b.Description, b.UpdatedAt)
}

// setBackupStatus moves a backup to status to, atomically, from one of
// from (from any status when from is empty); false when it was in none.
func setBackupStatus(ctx context.Context, q db.Querier, id, to string, from ...string) (bool, error) {
	return setRowStatus(ctx, q, "backups", id, to, from...)
}

// beginBackupRestore moves an available backup to restoring into volume
// volumeID; false when it was not available.
func beginBackupRestore(ctx context.Context, q db.Querier, id, volumeID string) (bool, error) {
	return db.Changed(ctx, q, `UPDATE backups SET status = 'restoring', restore_volume_id = ?, updated_at = ?
		WHERE id = ? AND status = 'available'`, volumeID, db.Now(), id)
}

// releaseRestoringBackup returns a backup held in restoring for a new
// volume volumeID that will not be restored into (its create failed, or
// it was force-deleted) to available.
func releaseRestoringBackup(ctx context.Context, q db.Querier, id, volumeID string) error {
	_, err := q.ExecContext(ctx, `UPDATE backups SET status = 'available', updated_at = ?
		WHERE id = ? AND status = 'restoring' AND restore_volume_id = ?`, db.Now(), id, volumeID)
	return err
}

// markBackupCreated moves a creating backup to available with what it
// stored; false when it was no longer creating (or is gone).
func markBackupCreated(ctx context.Context, q db.Querier, id string, objects, stored int64) (bool, error) {
	return db.Changed(ctx, q, `UPDATE backups SET status = 'available', object_count = ?, stored_bytes = ?,
		fail_reason = NULL, updated_at = ? WHERE id = ? AND status = 'creating'`, objects, stored, db.Now(), id)
}

// failBackupRow moves a backup from status from to error with reason.
func failBackupRow(ctx context.Context, q db.Querier, id, from, reason string) (bool, error) {
	return db.Changed(ctx, q, `UPDATE backups SET status = 'error', fail_reason = ?, updated_at = ?
		WHERE id = ? AND status = ?`, reason, db.Now(), id, from)
}

// deleteBackupRow removes a backup's row; its metadata goes with it.
func deleteBackupRow(ctx context.Context, q db.Querier, id string) error {
	_, err := q.ExecContext(ctx, `DELETE FROM backups WHERE id = ?`, id)
	return err
}

// latestBackup returns the backup of volumeID in project with the newest
// data (Cinder's choice of an incremental's parent), made before before
// when it is not zero; errs.NotFound when there is none.
func latestBackup(ctx context.Context, q db.Querier, volumeID, project string, before db.Timestamp) (*backupRow, error) {
	query := `SELECT ` + backupCols + ` FROM backups b WHERE b.volume_id = ? AND b.project_id = ?`
	args := []any{volumeID, project}
	if !before.Time.IsZero() {
		query += ` AND b.data_timestamp < ?`
		args = append(args, before)
	}
	b, err := scanBackup(q.QueryRowContext(ctx, query+` ORDER BY b.data_timestamp DESC, b.created_at DESC, b.id DESC LIMIT 1`, args...))
	if db.IsNoRows(err) {
		return nil, errs.E(errs.NotFound, "no backups of volume %s", volumeID)
	}
	return b, err
}

// countBackupUsage recounts a project's backups and their GiB (the backups
// and backup_gigabytes quotas) from the rows.
func countBackupUsage(ctx context.Context, q db.Querier, project string) (map[string]int64, error) {
	var count, gigabytes int64
	err := q.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0) FROM backups WHERE project_id = ?`, project).
		Scan(&count, &gigabytes)
	return map[string]int64{"backups": count, "backup_gigabytes": gigabytes}, err
}

// volumeBackingUp reports whether a backup of the volume is being made
// (the volume's data is read: it must stay).
func volumeBackingUp(ctx context.Context, q db.Querier, volumeID string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM backups WHERE volume_id = ? AND status = 'creating'`, volumeID).Scan(&n)
	return n > 0, err
}

// backupFilter selects the backups of a list.
type backupFilter struct {
	listFilter
	VolumeID *string
	// Extra are further column filters only admins may use.
	AZ, ParentID, SnapshotID *string
}

func (f backupFilter) where() (string, []any) {
	var w whereClause
	w.common(f.listFilter, "b", setBackupMetadata)
	if f.VolumeID != nil {
		w.add("b.volume_id = ?", *f.VolumeID)
	}
	if f.AZ != nil {
		w.add("b.availability_zone = ?", *f.AZ)
	}
	if f.ParentID != nil {
		w.add("b.parent_id = ?", *f.ParentID)
	}
	if f.SnapshotID != nil {
		w.add("b.snapshot_id = ?", *f.SnapshotID)
	}
	return w.clause()
}

// backupSortColumns maps the sort keys of backups to the expressions
// lists order by ("name" is display_name from 3.37).
var backupSortColumns = map[string]string{"id": "b.id", "display_name": "COALESCE(b.name, '')",
	"display_description": "COALESCE(b.description, '')", "status": "b.status", "volume_id": "b.volume_id",
	"size": "b.size", "created_at": "b.created_at", "updated_at": "COALESCE(b.updated_at, '')",
	"project_id": "b.project_id", "user_id": "b.user_id", "container": "b.container",
	"object_count": "b.object_count", "data_timestamp": "b.data_timestamp",
	"availability_zone": "COALESCE(b.availability_zone, '')"}

// listBackups reads one keyset-paged page of backups.
func listBackups(ctx context.Context, q db.Querier, f backupFilter, p listPage) (rows []*backupRow, more bool, err error) {
	where, args := f.where()
	k := keyset{table: "backups", alias: "b", col: backupSortColumns[p.SortKey]}
	return pageRows(ctx, q, k, `SELECT `+backupCols+` FROM backups b`, where, args, p, scanBackup)
}

// countBackups counts the backups f selects (with_count).
func countBackups(ctx context.Context, q db.Querier, f backupFilter) (int64, error) {
	where, args := f.where()
	var n int64
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM backups b`+where, args...).Scan(&n)
	return n, err
}

// importBackupRow writes the row of an imported backup record.
func importBackupRow(ctx context.Context, tx *db.Tx, b *backupRow) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO backups (id, project_id, user_id, volume_id, snapshot_id, parent_id,
		name, description, status, availability_zone, container, service_metadata, size, object_count, stored_bytes, data_timestamp, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		b.ID, b.ProjectID, b.UserID, b.VolumeID, b.SnapshotID, b.ParentID, b.Name, b.Description, b.Status, b.AZ,
		b.Container, b.Objects, b.Size, b.ObjectCount, b.StoredBytes, b.DataTimestamp, b.CreatedAt)
	if err != nil {
		return err
	}
	return putKV(ctx, tx, setBackupMetadata, b.ID, b.Metadata)
}
