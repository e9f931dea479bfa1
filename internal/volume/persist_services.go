package volume

// Persistence of the operator's settings of the volume services
// (os-services enable/disable, freeze/thaw).

import (
	"context"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// serviceKey names a service whatever node serves it: its binary and its
// backend ("" for the scheduler).
type serviceKey struct{ Binary, Backend string }

// serviceState is what operators set on a service; the zero value is a
// service nobody touched: enabled, not frozen.
type serviceState struct {
	Disabled       bool
	DisabledReason *string
	Frozen         bool
	UpdatedAt      db.Timestamp
}

// serviceStates reads the settings of every service that has any.
func serviceStates(ctx context.Context, q db.Querier) (map[serviceKey]serviceState, error) {
	return db.QueryMap(ctx, q, func(r db.Row) (k serviceKey, st serviceState, err error) {
		err = r.Scan(&k.Binary, &k.Backend, &st.Disabled, &st.DisabledReason, &st.Frozen, &st.UpdatedAt)
		return k, st, err
	}, `SELECT service_binary, backend, disabled, disabled_reason, frozen, updated_at FROM volume_services`)
}

// setServiceDisabled enables or disables a service; reason, when set,
// replaces the recorded reason (a plain enable or disable keeps it, as
// Cinder does).
func setServiceDisabled(ctx context.Context, q db.Querier, k serviceKey, disabled bool, reason *string) error {
	_, err := q.ExecContext(ctx, `INSERT INTO volume_services (service_binary, backend, disabled, disabled_reason, updated_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (service_binary, backend) DO UPDATE SET disabled = excluded.disabled,
		disabled_reason = COALESCE(excluded.disabled_reason, volume_services.disabled_reason), updated_at = excluded.updated_at`,
		k.Binary, k.Backend, disabled, reason, db.Now())
	return err
}

// setServiceFrozen freezes (or thaws) a service that is not frozen (is
// frozen); false when it was already in the state asked for.
func setServiceFrozen(ctx context.Context, q db.Querier, k serviceKey, frozen bool) (bool, error) {
	if !frozen {
		return db.Changed(ctx, q, `UPDATE volume_services SET frozen = ?, updated_at = ?
			WHERE service_binary = ? AND backend = ? AND frozen = ?`, false, db.Now(), k.Binary, k.Backend, true)
	}
	return db.Changed(ctx, q, `INSERT INTO volume_services (service_binary, backend, frozen, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (service_binary, backend) DO UPDATE SET frozen = excluded.frozen, updated_at = excluded.updated_at
		WHERE volume_services.frozen = ?`, k.Binary, k.Backend, true, db.Now(), false)
}

// hostUsage is one row of a backend's usage (os-hosts show): a project's
// (or, with an empty project, every project's) volumes on it, and the
// snapshots of those volumes (by the snapshots' project).
type hostUsage struct {
	Project                    string
	Volumes, SizeGiB           int64
	Snapshots, SnapshotSizeGiB int64
}

// backendUsage sums the volumes on a backend: the total first, then one
// row per project, in project order.
func backendUsage(ctx context.Context, q db.Querier, backend string) ([]hostUsage, error) {
	total := hostUsage{}
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0) FROM volumes WHERE host = ?`, backend).
		Scan(&total.Volumes, &total.SizeGiB); err != nil {
		return nil, err
	}
	rows, err := db.QueryRows(ctx, q, func(r db.Row) (hostUsage, error) {
		var u hostUsage
		err := r.Scan(&u.Project, &u.Volumes, &u.SizeGiB)
		return u, err
	}, `SELECT project_id, COUNT(*), COALESCE(SUM(size), 0) FROM volumes WHERE host = ? GROUP BY project_id ORDER BY project_id`, backend)
	if err != nil {
		return nil, err
	}
	snaps := map[string][2]int64{}
	err = db.EachRow(ctx, q, func(r db.Row) error {
		var p string
		var n, size int64
		if err := r.Scan(&p, &n, &size); err != nil {
			return err
		}
		snaps[p] = [2]int64{n, size}
		return nil
	}, `SELECT s.project_id, COUNT(*), COALESCE(SUM(s.volume_size), 0) FROM snapshots s JOIN volumes v ON v.id = s.volume_id
		WHERE v.host = ? GROUP BY s.project_id`, backend)
	// Cinder counts the snapshots of the projects that have volumes there.
	for i := range rows {
		rows[i].Snapshots, rows[i].SnapshotSizeGiB = snaps[rows[i].Project][0], snaps[rows[i].Project][1]
		total.Snapshots += rows[i].Snapshots
		total.SnapshotSizeGiB += rows[i].SnapshotSizeGiB
	}
	return append([]hostUsage{total}, rows...), err
}

// backendFrozen reports whether an operator froze the backend's service.
func backendFrozen(ctx context.Context, q db.Querier, backend string) (bool, error) {
	var frozen bool
	err := q.QueryRowContext(ctx, `SELECT frozen FROM volume_services WHERE service_binary = ? AND backend = ?`,
		binaryVolume, backend).Scan(&frozen)
	if db.IsNoRows(err) {
		return false, nil
	}
	return frozen, err
}
