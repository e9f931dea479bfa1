package volume

// Persistence of snapshots: the snapshots table, a snapshot's metadata and
// image metadata. Every SQL statement about snapshot rows is here.

import (
	"context"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// snapshot is a snapshot row with its metadata.
type snapshot struct {
	ID, VolumeID, ProjectID, UserID string
	Name, Description               *string
	Status                          string
	// Progress is "0%" until the snapshot is made, then "100%" (or what
	// os-update_snapshot_status set).
	Progress string
	// VolumeSize is the volume's size in GiB when the snapshot was taken.
	VolumeSize           int64
	TypeID               *string
	CreatedAt, UpdatedAt db.Timestamp
	Metadata             map[string]string
	// ImageMetadata is the volume's image metadata when it was taken, if
	// the volume was bootable: volumes made from the snapshot get it.
	ImageMetadata map[string]string
}

// The two key/value sets of a snapshot.
var (
	setSnapshotMetadata      = kvSet{"snapshot_metadata", "snapshot_id"}
	setSnapshotImageMetadata = kvSet{"snapshot_image_metadata", "snapshot_id"}
)

// kv returns the snapshot's key/values of set.
func (sn *snapshot) kv(set kvSet) map[string]string {
	if set == setSnapshotImageMetadata {
		return sn.ImageMetadata
	}
	return sn.Metadata
}

const snapCols = `s.id, s.volume_id, s.project_id, s.user_id, s.name, s.description, s.status, s.progress,
	s.volume_size, s.volume_type_id, s.created_at, s.updated_at`

func scanSnapshot(sc db.Row) (*snapshot, error) {
	sn := &snapshot{}
	err := sc.Scan(&sn.ID, &sn.VolumeID, &sn.ProjectID, &sn.UserID, &sn.Name, &sn.Description, &sn.Status, &sn.Progress,
		&sn.VolumeSize, &sn.TypeID, &sn.CreatedAt, &sn.UpdatedAt)
	return sn, err
}

// snapshotNotFound is Cinder's 404 for a snapshot id.
func snapshotNotFound(id string) error {
	return errs.E(errs.NotFound, "Snapshot %s could not be found.", id)
}

// getSnapshot loads a snapshot and its metadata by id without access
// checks, in one snapshot of the database when q is the pool.
func getSnapshot(ctx context.Context, q db.Querier, id string) (*snapshot, error) {
	return getWith(ctx, q, id, getSnapshotRow, loadSnapshotKVs)
}

// getSnapshotRow loads a snapshot's row without its metadata.
func getSnapshotRow(ctx context.Context, q db.Querier, id string) (*snapshot, error) {
	return rowByID(ctx, q, scanSnapshot, snapshotNotFound, `SELECT `+snapCols+` FROM snapshots s WHERE s.id = ?`, id)
}

// loadSnapshotKVs fills the metadata of snapshots with one query per set.
func loadSnapshotKVs(ctx context.Context, q db.Querier, snaps []*snapshot) error {
	return loadKVSets(ctx, q, snaps, setSnapshotMetadata, setSnapshotImageMetadata)
}

func (sn *snapshot) owner() string { return sn.ID }

func (sn *snapshot) setKV(set kvSet, m map[string]string) {
	if set == setSnapshotImageMetadata {
		sn.ImageMetadata = m
	} else {
		sn.Metadata = m
	}
}

// insertSnapshot writes a new snapshot's row and metadata.
func insertSnapshot(ctx context.Context, tx *db.Tx, sn *snapshot) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO snapshots (id, volume_id, project_id, user_id, name, description,
		status, progress, volume_size, volume_type_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sn.ID, sn.VolumeID, sn.ProjectID, sn.UserID, sn.Name, sn.Description, sn.Status, sn.Progress, sn.VolumeSize,
		sn.TypeID, sn.CreatedAt); err != nil {
		return err
	}
	return putKV(ctx, tx, setSnapshotMetadata, sn.ID, sn.Metadata)
}

// updateSnapshotText writes a snapshot's name, description and updated_at.
func updateSnapshotText(ctx context.Context, q db.Querier, sn *snapshot) error {
	return updateRowText(ctx, q, "snapshots", sn.ID, sn.Name, sn.Description, sn.UpdatedAt)
}

// setSnapshotStatus moves a snapshot to status to, atomically, from one of
// from (from any status when from is empty); false when it was in none.
func setSnapshotStatus(ctx context.Context, q db.Querier, id, to string, from ...string) (bool, error) {
	return setRowStatus(ctx, q, "snapshots", id, to, from...)
}

// setVolumeSnapshotsStatus sets the status of every snapshot of a volume.
func setVolumeSnapshotsStatus(ctx context.Context, q db.Querier, volumeID, status string) error {
	_, err := q.ExecContext(ctx, `UPDATE snapshots SET status = ?, updated_at = ? WHERE volume_id = ?`, status, db.Now(), volumeID)
	return err
}

// setSnapshotProgress records os-update_snapshot_status's progress.
func setSnapshotProgress(ctx context.Context, q db.Querier, id, progress string) error {
	_, err := q.ExecContext(ctx, `UPDATE snapshots SET progress = ? WHERE id = ?`, progress, id)
	return err
}

// markSnapshotCreated moves a creating snapshot to available at 100%. It
// reports false when the snapshot was no longer creating (or is gone).
func markSnapshotCreated(ctx context.Context, q db.Querier, id string) (bool, error) {
	return db.Changed(ctx, q, `UPDATE snapshots SET status = 'available', progress = '100%', updated_at = ?
		WHERE id = ? AND status = 'creating'`, db.Now(), id)
}

// deleteSnapshotRow removes a snapshot's row; its metadata goes with it.
func deleteSnapshotRow(ctx context.Context, q db.Querier, id string) error {
	_, err := q.ExecContext(ctx, `DELETE FROM snapshots WHERE id = ?`, id)
	return err
}

// latestSnapshot returns the newest snapshot of a volume, as Cinder's
// get_latest_snapshot orders them; errs.NotFound when it has none.
func latestSnapshot(ctx context.Context, q db.Querier, volumeID string) (*snapshot, error) {
	sn, err := scanSnapshot(q.QueryRowContext(ctx, `SELECT `+snapCols+` FROM snapshots s WHERE s.volume_id = ?
		ORDER BY s.created_at DESC, s.id DESC LIMIT 1`, volumeID))
	if db.IsNoRows(err) {
		return nil, errs.E(errs.NotFound, "Volume %s has no snapshots.", volumeID)
	}
	return sn, err
}

// volumeSnapshots returns every snapshot of a volume, oldest first.
func volumeSnapshots(ctx context.Context, q db.Querier, volumeID string) ([]*snapshot, error) {
	return db.QueryRows(ctx, q, scanSnapshot, `SELECT `+snapCols+` FROM snapshots s WHERE s.volume_id = ?
		ORDER BY s.created_at, s.id`, volumeID)
}

// lockVolumeIn takes the volume's row lock while it is in one of statuses
// (a write that changes nothing) and reports whether it was. A snapshot is
// recorded under it, so that a concurrent delete of the volume, which
// moves the volume out of those statuses before it looks for snapshots,
// either sees the snapshot or makes the snapshot's creation fail.
// A moving volume is not locked: its data must not change under the copy
// (and a snapshot would stay on the backend it leaves).
func lockVolumeIn(ctx context.Context, tx *db.Tx, id string, statuses ...string) (bool, error) {
	return lockIn(ctx, tx, "volumes", id, statuses, notMigrating)
}

// lockSnapshotIn is lockVolumeIn for a snapshot: a volume is recorded from
// it under the lock, so that the snapshot's delete, which moves it out of
// statuses, either comes first (and refuses the volume) or sees the volume.
func lockSnapshotIn(ctx context.Context, tx *db.Tx, id string, statuses ...string) (bool, error) {
	return lockIn(ctx, tx, "snapshots", id, statuses, "TRUE")
}

// lockIn takes the row lock of id in table while it is in one of statuses
// and cond holds.
func lockIn(ctx context.Context, tx *db.Tx, table, id string, statuses []string, cond string) (bool, error) {
	args := []any{id}
	for _, st := range statuses {
		args = append(args, st)
	}
	return db.Changed(ctx, tx, `UPDATE `+table+` SET status = status WHERE id = ? AND status IN (`+db.Placeholders(len(statuses))+`) AND `+cond, args...)
}

// volumeHasSnapshots reports whether a volume has any snapshot.
func volumeHasSnapshots(ctx context.Context, q db.Querier, volumeID string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM snapshots WHERE volume_id = ?`, volumeID).Scan(&n)
	return n > 0, err
}

// volumeCreatingFrom reports whether a volume is being created from the
// snapshot, whose data must stay until that volume is made.
func volumeCreatingFrom(ctx context.Context, q db.Querier, snapshotID string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM volumes WHERE snapshot_id = ? AND status = 'creating'`, snapshotID).Scan(&n)
	return n > 0, err
}

// volumeBeingCopied reports whether a snapshot or a clone of a volume is
// being made.
func volumeBeingCopied(ctx context.Context, q db.Querier, volumeID string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM snapshots WHERE volume_id = ? AND status = 'creating')
		+ (SELECT COUNT(*) FROM volumes WHERE source_volid = ? AND status = 'creating')`, volumeID, volumeID).Scan(&n)
	return n > 0, err
}

// snapshotFilter selects the snapshots of a list.
type snapshotFilter struct {
	listFilter
	VolumeID *string
	// AZ is the availability zone of the snapshot's volume.
	AZ *string
	// None selects nothing (a consumes_quota=false filter: every snapshot
	// counts against its project's quota).
	None bool
}

// where renders the filter as a WHERE clause ("" when it selects all).
func (f snapshotFilter) where() (string, []any) {
	var w whereClause
	if f.None {
		w.add("1 = 0")
	}
	w.common(f.listFilter, "s", setSnapshotMetadata)
	if f.VolumeID != nil {
		w.add("s.volume_id = ?", *f.VolumeID)
	}
	if f.AZ != nil {
		w.add("EXISTS (SELECT 1 FROM volumes v WHERE v.id = s.volume_id AND v.availability_zone = ?)", *f.AZ)
	}
	return w.clause()
}

// snapshotSortColumns maps the snapshot columns Cinder sorts by to the
// expressions lists order by ("name" is display_name from 3.30).
var snapshotSortColumns = map[string]string{"id": "s.id", "display_name": "COALESCE(s.name, '')",
	"display_description": "COALESCE(s.description, '')", "status": "s.status", "volume_id": "s.volume_id",
	"volume_size": "s.volume_size", "created_at": "s.created_at", "updated_at": "COALESCE(s.updated_at, '')",
	"project_id": "s.project_id", "user_id": "s.user_id", "progress": "s.progress"}

// listSnapshots reads one keyset-paged page of snapshots: O(offset+limit)
// rows, however many match. more reports that further snapshots follow.
func listSnapshots(ctx context.Context, q db.Querier, f snapshotFilter, p listPage) (snaps []*snapshot, more bool, err error) {
	where, args := f.where()
	k := keyset{table: "snapshots", alias: "s", col: snapshotSortColumns[p.SortKey]}
	return pageRows(ctx, q, k, `SELECT `+snapCols+` FROM snapshots s`, where, args, p, scanSnapshot)
}
