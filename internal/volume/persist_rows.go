package volume

// Persistence shared by the tables of things with a status, a name and a
// description (volumes, snapshots, backups): the statements differ only in
// the table, which is always one of this package's constants, never input.

import (
	"context"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// updateRowText writes the name, description and updated_at of row id of
// table.
func updateRowText(ctx context.Context, q db.Querier, table, id string, name, description *string, updatedAt db.Timestamp) error {
	_, err := q.ExecContext(ctx, `UPDATE `+table+` SET name = ?, description = ?, updated_at = ? WHERE id = ?`,
		name, description, updatedAt, id)
	return err
}

// setRowStatus moves row id of table to status to, atomically, from one
// of from (from any status when from is empty); false when it was in none.
func setRowStatus(ctx context.Context, q db.Querier, table, id, to string, from ...string) (bool, error) {
	query := `UPDATE ` + table + ` SET status = ?, updated_at = ? WHERE id = ?`
	args := []any{to, db.Now(), id}
	if len(from) > 0 {
		query += ` AND status IN (` + db.Placeholders(len(from)) + `)`
		for _, f := range from {
			args = append(args, f)
		}
	}
	return db.Changed(ctx, q, query, args...)
}
