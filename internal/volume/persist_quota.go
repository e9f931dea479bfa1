package volume

// Persistence of quotas: the limits of projects and quota classes, the
// usage kept per project, and the recounts of usage from the rows. Every
// SQL statement about quotas is here.

import (
	"context"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// quotaUsage is what a project uses of one resource.
type quotaUsage struct{ InUse, Reserved int64 }

// addUsage adds inUse and reserved to the project's usage of resource and
// returns the usage after the change. On PostgreSQL the upsert locks the
// row until the transaction ends, so concurrent charges of one project
// queue behind each other (SQLite's write transactions are serial anyway).
func addUsage(ctx context.Context, tx *db.Tx, project, resource string, inUse, reserved int64) (quotaUsage, error) {
	var u quotaUsage
	_, err := tx.ExecContext(ctx, `INSERT INTO quota_usages (project_id, resource, in_use, reserved) VALUES (?, ?, ?, ?)
		ON CONFLICT (project_id, resource) DO UPDATE SET in_use = quota_usages.in_use + excluded.in_use,
		reserved = quota_usages.reserved + excluded.reserved`, project, resource, inUse, reserved)
	if err != nil {
		return u, err
	}
	err = tx.QueryRowContext(ctx, `SELECT in_use, reserved FROM quota_usages WHERE project_id = ? AND resource = ?`,
		project, resource).Scan(&u.InUse, &u.Reserved)
	return u, err
}

// projectUsages is every usage recorded for project, by resource key.
func projectUsages(ctx context.Context, q db.Querier, project string) (map[string]quotaUsage, error) {
	return db.QueryMap(ctx, q, func(r db.Row) (k string, u quotaUsage, err error) {
		err = r.Scan(&k, &u.InUse, &u.Reserved)
		return k, u, err
	}, `SELECT resource, in_use, reserved FROM quota_usages WHERE project_id = ?`, project)
}

// limitsOf reads a set of limits: a project's (table quotas) or a quota
// class's (table quota_classes), by resource key.
func limitsOf(ctx context.Context, q db.Querier, class bool, owner string) (map[string]int64, error) {
	query := `SELECT resource, hard_limit FROM quotas WHERE project_id = ?`
	if class {
		query = `SELECT resource, hard_limit FROM quota_classes WHERE class_name = ?`
	}
	return db.QueryMap(ctx, q, db.Pair[string, int64], query, owner)
}

// setLimits writes limits of a project or a quota class, in tx.
func setLimits(ctx context.Context, tx *db.Tx, class bool, owner string, limits map[string]int64) error {
	query := `INSERT INTO quotas (project_id, resource, hard_limit) VALUES (?, ?, ?)
		ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit`
	if class {
		query = `INSERT INTO quota_classes (class_name, resource, hard_limit) VALUES (?, ?, ?)
		ON CONFLICT (class_name, resource) DO UPDATE SET hard_limit = excluded.hard_limit`
	}
	for k, n := range limits {
		if _, err := tx.ExecContext(ctx, query, owner, k, n); err != nil {
			return err
		}
	}
	return nil
}

// deleteProjectLimits drops a project's own limits: it has the defaults again.
func deleteProjectLimits(ctx context.Context, q db.Querier, project string) error {
	_, err := q.ExecContext(ctx, `DELETE FROM quotas WHERE project_id = ?`, project)
	return err
}

// retypeSnapshots gives a volume's snapshots the type the volume now has
// (Cinder's retype does too), so their per-type usage follows the volume.
func retypeSnapshots(ctx context.Context, q db.Querier, volumeID, typeID string) error {
	_, err := q.ExecContext(ctx, `UPDATE snapshots SET volume_type_id = ? WHERE volume_id = ?`, typeID, volumeID)
	return err
}

// countGroups sums the rows of a grouped count query into counts by key,
// keyed by prefix alone when the group is "" and prefix/group otherwise.
func countGroups(ctx context.Context, q db.Querier, into map[string]int64, prefix, query string, args ...any) error {
	return db.EachRow(ctx, q, func(r db.Row) error {
		var group *string
		var n int64
		if err := r.Scan(&group, &n); err != nil {
			return err
		}
		if group != nil {
			into[prefix+"/"+*group] += n
		}
		into[prefix] += n
		return nil
	}, query, args...)
}

// countVolumes recounts a project's volumes and their gigabytes from the
// rows, in total and per type.
func countVolumes(ctx context.Context, q db.Querier, project string) (map[string]int64, error) {
	return countTypedRows(ctx, q, project, "volumes", "type_id", "size")
}

// countSnapshots recounts a project's snapshots and their gigabytes (the
// size of the volume when snapshotted, as Cinder counts them) from the
// rows, in total and per type.
func countSnapshots(ctx context.Context, q db.Querier, project string) (map[string]int64, error) {
	return countTypedRows(ctx, q, project, "snapshots", "volume_type_id", "volume_size")
}

// countTypedRows recounts a project's rows of table (under the key table)
// and the gigabytes in their column size, in total and per type (column
// typeCol). The names are the callers' constants, never input.
func countTypedRows(ctx context.Context, q db.Querier, project, table, typeCol, size string) (map[string]int64, error) {
	out := map[string]int64{table: 0}
	where := ` FROM ` + table + ` WHERE project_id = ? GROUP BY ` + typeCol
	if err := countGroups(ctx, q, out, table, `SELECT `+typeCol+`, COUNT(*)`+where, project); err != nil {
		return nil, err
	}
	err := countGroups(ctx, q, out, "gigabytes", `SELECT `+typeCol+`, COALESCE(SUM(`+size+`), 0)`+where, project)
	return out, err
}

// typeNames maps every volume type's id to its name, for the per-type keys.
func typeNames(ctx context.Context, q db.Querier) (map[string]string, error) {
	return db.QueryMap(ctx, q, db.Pair[string, string], `SELECT id, name FROM volume_types`)
}
