package volume

// Persistence of volume transfers. Every SQL statement about the
// volume_transfers table is here, with the change of owner of the volume
// an accepted transfer makes.

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// transfer is a volume_transfers row.
type transfer struct {
	ID, VolumeID         string
	Name                 *string
	Salt, CryptHash      string
	NoSnapshots          bool
	SourceProjectID      string
	DestinationProjectID *string
	Accepted             bool
	CreatedAt, UpdatedAt db.Timestamp
}

const transferCols = `t.id, t.volume_id, t.name, t.salt, t.crypt_hash, t.no_snapshots, t.source_project_id,
	t.destination_project_id, t.accepted, t.created_at, t.updated_at`

func scanTransfer(r db.Row) (*transfer, error) {
	t := &transfer{}
	err := r.Scan(&t.ID, &t.VolumeID, &t.Name, &t.Salt, &t.CryptHash, &t.NoSnapshots, &t.SourceProjectID,
		&t.DestinationProjectID, &t.Accepted, &t.CreatedAt, &t.UpdatedAt)
	return t, err
}

// transferNotFound is Cinder's 404 for a transfer id.
func transferNotFound(id string) error {
	return errs.E(errs.NotFound, "Transfer %s could not be found.", id)
}

// getTransfer loads a live (neither accepted nor deleted) transfer.
func getTransfer(ctx context.Context, q db.Querier, id string) (*transfer, error) {
	return rowByID(ctx, q, scanTransfer, transferNotFound, `SELECT `+transferCols+` FROM volume_transfers t
		WHERE t.id = ? AND t.deleted_at IS NULL`, id)
}

// offerVolume puts an available volume up for transfer: the volume goes
// to awaiting-transfer and the transfer is recorded, in tx.
func offerVolume(ctx context.Context, tx *db.Tx, t *transfer) error {
	if err := setStatus(ctx, tx, t.VolumeID, "awaiting-transfer", "available"); err != nil {
		return errs.E(errs.Invalid, "Invalid volume: Transfer %s: Volume id %s expected in available state.", t.ID, t.VolumeID)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO volume_transfers (id, volume_id, name, salt, crypt_hash, no_snapshots,
		source_project_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.VolumeID, t.Name, t.Salt, t.CryptHash, t.NoSnapshots, t.SourceProjectID, t.CreatedAt)
	return err
}

// withdrawTransfer ends a live transfer unaccepted; its volume, if still
// awaiting the transfer, is available again. False when the transfer was
// no longer live.
func withdrawTransfer(ctx context.Context, tx *db.Tx, t *transfer) (bool, error) {
	now := db.Now()
	ended, err := db.Changed(ctx, tx, `UPDATE volume_transfers SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL`,
		now, now, t.ID)
	if err != nil || !ended {
		return ended, err
	}
	_, err = tx.ExecContext(ctx, `UPDATE volumes SET previous_status = status, status = 'available', updated_at = ?
		WHERE id = ? AND status = 'awaiting-transfer'`, now, t.VolumeID)
	return true, err
}

// acceptTransfer gives the transfer's volume to user and project, and
// records the transfer as accepted, in tx: the volume changes owner and the
// transfer ends together or not at all.
func acceptTransfer(ctx context.Context, tx *db.Tx, t *transfer, userID, projectID string) error {
	now := db.Now()
	moved, err := db.Changed(ctx, tx, `UPDATE volumes SET previous_status = status, status = 'available', user_id = ?,
		project_id = ?, updated_at = ? WHERE id = ? AND status = 'awaiting-transfer'`, userID, projectID, now, t.VolumeID)
	if err != nil {
		return err
	}
	if !moved {
		return errs.E(errs.Invalid, "Invalid volume: Transfer %s: Volume id %s expected in awaiting-transfer state.", t.ID, t.VolumeID)
	}
	if !t.NoSnapshots {
		// The snapshots go with the volume, all available or none.
		var busy *string
		err := tx.QueryRowContext(ctx, `SELECT id FROM snapshots WHERE volume_id = ? AND status <> 'available' LIMIT 1`,
			t.VolumeID).Scan(&busy)
		if err == nil {
			return errs.E(errs.Invalid, "Invalid snapshot: Transfer %s: Snapshot %s is not in the expected available state.", t.ID, *busy)
		}
		if !db.IsNoRows(err) {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE snapshots SET user_id = ?, project_id = ?, updated_at = ? WHERE volume_id = ?`,
			userID, projectID, now, t.VolumeID); err != nil {
			return err
		}
	}
	ended, err := db.Changed(ctx, tx, `UPDATE volume_transfers SET accepted = ?, destination_project_id = ?,
		deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL`, true, projectID, now, now, t.ID)
	if err == nil && !ended {
		err = transferNotFound(t.ID)
	}
	return err
}

// transferFilter selects the live transfers a list shows.
type transferFilter struct {
	// AllProjects lists every project's transfers, else ProjectID's (the
	// project offering them).
	AllProjects bool
	ProjectID   string
	// Equal are column = value conditions, by column name.
	Equal map[string]string
}

// transferFilterColumns maps the list filters Cinder accepts (the
// transfer's fields) to columns; name stands for display_name.
var transferFilterColumns = map[string]string{"id": "t.id", "volume_id": "t.volume_id", "display_name": "t.name",
	"source_project_id": "t.source_project_id", "destination_project_id": "t.destination_project_id"}

// transferSortColumns are the sort keys of transfer lists.
var transferSortColumns = map[string]string{"created_at": "t.created_at", "id": "t.id", "volume_id": "t.volume_id",
	"display_name": "COALESCE(t.name, '')", "name": "COALESCE(t.name, '')"}

func (f transferFilter) where() (string, []any) {
	conds := []string{"t.deleted_at IS NULL"}
	var args []any
	if !f.AllProjects {
		conds, args = append(conds, "t.source_project_id = ?"), append(args, f.ProjectID)
	}
	for _, k := range slices.Sorted(maps.Keys(f.Equal)) {
		conds, args = append(conds, transferFilterColumns[k]+" = ?"), append(args, f.Equal[k])
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// listTransfers reads one keyset-paged page of live transfers (see
// keyset); more reports that further transfers follow. The marker is
// checked by the caller.
func listTransfers(ctx context.Context, q db.Querier, f transferFilter, p listPage) (ts []*transfer, more bool, err error) {
	where, args := f.where()
	k := keyset{table: "volume_transfers", alias: "t", col: transferSortColumns[p.SortKey]}
	return pageRows(ctx, q, k, `SELECT `+transferCols+` FROM volume_transfers t`, where, args, p, scanTransfer)
}
