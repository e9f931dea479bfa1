package volume

// Persistence of volume migration: the volume's migration_status and the
// switch of its host (and type) when its data has moved.

import (
	"context"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// Migration statuses of a volume (Cinder's). A volume is moving while its
// status is starting or migrating; NULL, success and error (and deleting,
// which Cinder uses for a source it failed to delete) are at rest.
const (
	migStarting  = "starting"
	migMigrating = "migrating"
	migSuccess   = "success"
	migError     = "error"
)

// notMigrating is the SQL condition that a volume is not moving between
// backends (Cinder's AVAILABLE_MIGRATION_STATUS).
const notMigrating = `(migration_status IS NULL OR migration_status IN ('success', 'error', 'deleting'))`

// migrating reports whether v is moving between backends (Go's reading of
// notMigrating).
func migrating(v *vol) bool {
	if v.MigrationStatus == nil {
		return false
	}
	switch *v.MigrationStatus {
	case migSuccess, migError, "deleting":
		return false
	}
	return true
}

// migrationStart is what a migration changes when it starts: the volume's
// status while it moves ("" keeps it: an admin's migration without
// lock_volume) and, for a retype, the type it must not have already.
type migrationStart struct {
	ID, Host string
	// Status replaces the volume's status (retyping, maintenance), whose
	// previous value is kept in previous_status; "" leaves it.
	Status string
	// NotTypeID, when set, refuses a volume already of that type.
	NotTypeID string
}

// startMigration marks a volume at rest (available or in-use, not moving,
// not on Host already) as starting to move, atomically; false when it is
// not in that state.
func startMigration(ctx context.Context, q db.Querier, m migrationStart) (bool, error) {
	set := `migration_status = 'starting', previous_status = status, updated_at = ?`
	args := []any{db.Now()}
	if m.Status != "" {
		set += `, status = ?`
		args = append(args, m.Status)
	}
	where := ` WHERE id = ? AND status IN ('available', 'in-use') AND ` + notMigrating +
		` AND (host IS NULL OR host <> ?)`
	args = append(args, m.ID, m.Host)
	if m.NotTypeID != "" {
		where += ` AND (type_id IS NULL OR type_id <> ?)`
		args = append(args, m.NotTypeID)
	}
	return db.Changed(ctx, q, `UPDATE volumes SET `+set+where, args...)
}

// setMigrationStatus moves a volume's migration status from one value to
// another; false when it did not have from.
func setMigrationStatus(ctx context.Context, q db.Querier, id, from, to string) (bool, error) {
	return db.Changed(ctx, q, `UPDATE volumes SET migration_status = ?, updated_at = ? WHERE id = ? AND migration_status = ?`,
		to, db.Now(), id, from)
}

// restoredStatus is the status a volume returns to when its move ends:
// the one it had before, if the move set one (retyping, maintenance).
const restoredStatus = `CASE WHEN status IN ('retyping', 'maintenance') THEN COALESCE(previous_status, 'available') ELSE status END`

// migrationSwitch is the outcome of a volume's data having moved.
type migrationSwitch struct {
	ID, Host, AZ string
	// TypeID, when set, is the type the volume takes (a retype), with the
	// multiattach flag it implies.
	TypeID      string
	Multiattach bool
}

// finishMigration points a moving volume at its new backend (and type),
// marks the move a success and gives the volume back its status; false
// when the volume is no longer migrating (reset or deleted meanwhile).
func finishMigration(ctx context.Context, q db.Querier, m migrationSwitch) (bool, error) {
	set := `host = ?, availability_zone = ?, migration_status = 'success', previous_status = status, status = ` +
		restoredStatus + `, updated_at = ?`
	args := []any{m.Host, m.AZ, db.Now()}
	if m.TypeID != "" {
		set += `, type_id = ?, multiattach = ?`
		args = append(args, m.TypeID, m.Multiattach)
	}
	return db.Changed(ctx, q, `UPDATE volumes SET `+set+` WHERE id = ? AND migration_status = 'migrating'`, append(args, m.ID)...)
}

// abortMigration ends a volume's move as failed: it stays where it was,
// with its status back; false when it was not moving.
func abortMigration(ctx context.Context, q db.Querier, id string) (bool, error) {
	return db.Changed(ctx, q, `UPDATE volumes SET migration_status = 'error', previous_status = status, status = `+
		restoredStatus+`, updated_at = ? WHERE id = ? AND migration_status IN ('starting', 'migrating')`, db.Now(), id)
}

// retypeInPlace gives a volume at rest a new type on its own backend,
// atomically with the checks a retype makes; false when the volume is not
// available or in-use, is moving, or has the type already.
func retypeInPlace(ctx context.Context, q db.Querier, id, typeID string, multiattach bool) (bool, error) {
	return db.Changed(ctx, q, `UPDATE volumes SET type_id = ?, multiattach = ?, updated_at = ?
		WHERE id = ? AND status IN ('available', 'in-use') AND `+notMigrating+` AND (type_id IS NULL OR type_id <> ?)`,
		typeID, multiattach, db.Now(), id, typeID)
}

// resetMigrationStatus sets a volume's migration status (os-reset_status);
// "none" clears it. A move in progress is off: it finds its volume no
// longer migrating when it ends, and drops its copy.
func resetMigrationStatus(ctx context.Context, q db.Querier, id, status string) error {
	var v any = status
	if status == "none" {
		v = nil
	}
	_, err := q.ExecContext(ctx, `UPDATE volumes SET migration_status = ?, updated_at = ? WHERE id = ?`, v, db.Now(), id)
	return err
}
