package task

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// The SQL of the task system. Leases are compared in the nodes' clocks
// (fixed-width UTC text, see db.Timestamp), so nodes must keep their clocks
// within a small fraction of the lease of each other (NTP does).

func ts(t time.Time) db.Timestamp { return db.Timestamp{Time: t.UTC().Truncate(time.Microsecond)} }

// insert writes a new task row; owner is empty for a pending task.
func insert(ctx context.Context, q db.Querier, s Spec, state State, owner string, leaseUntil time.Time) (string, []byte, error) {
	payload := []byte("{}")
	if s.Payload != nil {
		var err error
		if payload, err = json.Marshal(s.Payload); err != nil {
			return "", nil, fmt.Errorf("task payload: %w", err)
		}
	}
	id := uuid.NewString()
	now := time.Now()
	var ownerArg, leaseArg, startedArg any
	attempts := 0
	if owner != "" {
		ownerArg, leaseArg, startedArg, attempts = owner, ts(leaseUntil), ts(now), 1
	}
	_, err := q.ExecContext(ctx, `INSERT INTO tasks (id, kind, subject, payload, state, attempts, epoch, not_before,
lease_owner, lease_until, request_id, project_id, host, created_at, updated_at, started_at, moved_at, store)
VALUES (?,?,?,?,?,?,1,?,?,?,?,?,?,?,?,?,?,?)`,
		id, s.Kind, s.Subject, string(payload), string(state), attempts, ts(now.Add(s.Delay)),
		ownerArg, leaseArg, s.RequestID, s.ProjectID, s.Host, ts(now), ts(now), startedArg, startedArg, s.Store)
	if err != nil {
		return "", nil, fmt.Errorf("adding %s task: %w", s.Kind, err)
	}
	return id, payload, nil
}

// candidate is a claimable row as first seen.
type candidate struct {
	id, kind string
	epoch    int64
}

// hostFilter is the condition under which a node advertising address may
// claim a task: it names no host, or this one, or a host no live node
// advertises (any node claims it then, to fail it: see Task.Stranded).
// Its two arguments are address and now.
const hostFilter = `(host = '' OR host = ? OR NOT EXISTS (SELECT 1 FROM nodes n WHERE n.address = tasks.host AND n.alive_until >= ?))`

// due lists tasks of the given kinds that a node advertising address may
// claim now: pending ones whose time has come and running ones whose lease
// has run out.
func due(ctx context.Context, q db.Querier, kinds []string, address string, limit int) ([]candidate, error) {
	if len(kinds) == 0 || limit <= 0 {
		return nil, nil
	}
	now := ts(time.Now())
	args := []any{}
	for _, k := range kinds {
		args = append(args, k)
	}
	args = append(args, now, now, address, now, limit)
	return db.QueryRows(ctx, q, func(r db.Row) (candidate, error) {
		var c candidate
		err := r.Scan(&c.id, &c.kind, &c.epoch)
		return c, err
	}, `SELECT id, kind, epoch FROM tasks
WHERE kind IN (`+db.Placeholders(len(kinds))+`)
  AND ((state = 'pending' AND not_before <= ?) OR (state = 'running' AND lease_until < ?))
  AND `+hostFilter+`
ORDER BY not_before, created_at LIMIT ?`, args...)
}

// claim takes c for owner if nobody claimed it since it was listed (the
// epoch is unchanged and it is still claimable). It returns the claimed
// task, or nil when another node was first.
func claim(ctx context.Context, q db.Querier, c candidate, owner string, leaseUntil time.Time) (*Task, error) {
	now := ts(time.Now())
	// Each attempt counts its bytes from the start.
	claimed, err := db.Changed(ctx, q, `UPDATE tasks SET state = 'running', lease_owner = ?, lease_until = ?,
epoch = epoch + 1, attempts = attempts + 1, updated_at = ?, started_at = ?, moved_at = ?, bytes_done = 0
WHERE id = ? AND epoch = ?
  AND ((state = 'pending' AND not_before <= ?) OR (state = 'running' AND lease_until < ?))`,
		owner, ts(leaseUntil), now, now, now, c.id, c.epoch, now, now)
	if err != nil || !claimed {
		return nil, err
	}
	t := &Task{}
	var created db.Timestamp
	var payload string
	err = q.QueryRowContext(ctx, `SELECT id, kind, subject, payload, attempts, epoch, last_error, request_id, project_id, host,
created_at, store FROM tasks WHERE id = ?`, c.id).Scan(&t.ID, &t.Kind, &t.Subject, &payload, &t.Attempt, &t.epoch, &t.LastError,
		&t.RequestID, &t.ProjectID, &t.Host, &created, &t.Store)
	if err != nil {
		return nil, err
	}
	t.payload, t.CreatedAt = []byte(payload), created.Time
	if t.epoch != c.epoch+1 {
		return nil, nil // claimed again in between (a lease shorter than this read)
	}
	return t, nil
}

// renew extends the running leases owner holds of the tasks ids (those
// this runner holds: a lease left by an earlier run of the same node,
// whose task nothing runs any more, is let run out, so that it is claimed
// again) and returns the ids and epochs it extended: a task this node
// holds that is not among them has been claimed by another node. With an
// error, the map holds those read before it.
func renew(ctx context.Context, q db.Querier, owner string, ids []string, leaseUntil time.Time) (map[string]int64, error) {
	if len(ids) == 0 {
		return map[string]int64{}, nil
	}
	args := []any{ts(leaseUntil), ts(time.Now()), owner}
	for _, id := range ids {
		args = append(args, id)
	}
	return db.QueryMap(ctx, q, db.Pair[string, int64], `UPDATE tasks SET lease_until = ?, updated_at = ?
WHERE lease_owner = ? AND state = 'running' AND id IN (`+db.Placeholders(len(ids))+`) RETURNING id, epoch`, args...)
}

// saveProgress records a held task's bytes done and expected and when its
// bytes last moved.
func saveProgress(ctx context.Context, q db.Querier, id string, epoch int64, c counters) error {
	_, err := q.ExecContext(ctx, `UPDATE tasks SET bytes_done = ?, bytes_total = ?, moved_at = ?, store = ?
WHERE id = ? AND epoch = ? AND state = 'running'`, c.done, c.total, ts(c.moved), c.store, id, epoch)
	return err
}

// counters are a held task's progress as saved with it.
type counters struct {
	done, total int64
	moved       time.Time
	store       string
}

// finish ends a task claimed at epoch, in q, with its final counters;
// ErrLeaseLost when the task was claimed again since (or already
// finished).
func finish(ctx context.Context, q db.Querier, id string, epoch int64, state State, lastError string, c counters) error {
	now := ts(time.Now())
	held, err := db.Changed(ctx, q, `UPDATE tasks SET state = ?, last_error = CASE WHEN ? = '' THEN last_error ELSE ? END,
lease_owner = NULL, lease_until = NULL, finished_at = ?, updated_at = ?, bytes_done = ?, bytes_total = ?, moved_at = ?,
store = ?
WHERE id = ? AND epoch = ? AND state = 'running'`, string(state), lastError, lastError, now, now, c.done, c.total,
		ts(c.moved), c.store, id, epoch)
	return leaseHeld(held, err, "finishing", id)
}

// requeue hands a task claimed at epoch back as pending, due at notBefore,
// recording lastError. refund takes back the attempt counted at the claim
// (the runner stopped; the work itself did not fail).
func requeue(ctx context.Context, q db.Querier, id string, epoch int64, notBefore time.Time, lastError string, refund bool) error {
	back := 0
	if refund {
		back = 1
	}
	held, err := db.Changed(ctx, q, `UPDATE tasks SET state = 'pending', not_before = ?, attempts = attempts - ?,
last_error = CASE WHEN ? = '' THEN last_error ELSE ? END, lease_owner = NULL, lease_until = NULL, updated_at = ?
WHERE id = ? AND epoch = ? AND state = 'running'`, ts(notBefore), back, lastError, lastError, ts(time.Now()), id, epoch)
	return leaseHeld(held, err, "requeueing", id)
}

// leaseHeld is the error of a statement on a task that changes it only
// under the claim's epoch: ErrLeaseLost when it changed nothing.
func leaseHeld(changed bool, err error, doing, id string) error {
	if err != nil {
		return fmt.Errorf("%s task %s: %w", doing, id, err)
	}
	if !changed {
		return ErrLeaseLost
	}
	return nil
}

// expireOthers ends every running lease not owner's now: on an exclusive
// database the other owners are dead processes (see Options.Exclusive).
// owner's own are spared: a request may have begun a task before its
// runner started.
func expireOthers(ctx context.Context, q db.Querier, owner string) error {
	_, err := q.ExecContext(ctx, `UPDATE tasks SET lease_until = ? WHERE state = 'running' AND lease_owner <> ?`,
		ts(time.Unix(0, 0)), owner)
	return err
}

// prune deletes finished tasks that finished before cutoff, and the
// records of nodes gone (stopped or stale) since before cutoff.
func prune(ctx context.Context, q db.Querier, cutoff time.Time) error {
	if _, err := q.ExecContext(ctx, `DELETE FROM tasks WHERE state IN ('done', 'failed') AND finished_at < ?`, ts(cutoff)); err != nil {
		return err
	}
	_, err := q.ExecContext(ctx, `DELETE FROM nodes WHERE alive_until < ?`, ts(cutoff))
	return err
}

// Info is a task as the operator sees it.
type Info struct {
	ID, Kind, Subject, RequestID, ProjectID string
	// Store is the image store the work writes to or reads from, if any.
	Store    string
	State    State
	Attempts int
	// Node holds a running task's lease; Host is the Spec's Host.
	Node, Host             string
	LastError              string
	CreatedAt, UpdatedAt   time.Time
	LeaseUntil, FinishedAt time.Time
	// BytesDone of BytesTotal (-1: not known) in the current attempt,
	// which started at StartedAt; bytes last moved at MovedAt.
	BytesDone, BytesTotal int64
	StartedAt, MovedAt    time.Time
}

// Rate is the attempt's average rate in bytes per second, as of now.
func (i Info) Rate(now time.Time) float64 {
	end := now
	if !i.FinishedAt.IsZero() {
		end = i.FinishedAt
	}
	if i.StartedAt.IsZero() || !end.After(i.StartedAt) {
		return 0
	}
	return float64(i.BytesDone) / end.Sub(i.StartedAt).Seconds()
}

// Stalled reports whether a running task's bytes have not moved for
// longer than after (as of now).
func (i Info) Stalled(now time.Time, after time.Duration) bool {
	if i.State != Running || i.MovedAt.IsZero() || after <= 0 {
		return false
	}
	return now.Sub(i.MovedAt) > after
}

// Filter selects tasks for Find; zero fields do not filter.
type Filter struct {
	Subject, ProjectID, Kind, Store string
	// Active keeps pending and running tasks only.
	Active bool
	// Since keeps tasks created or finished at or after it.
	Since time.Time
	// Limit bounds the result (default 100), newest first.
	Limit int
}

// Find returns the tasks f selects, newest first.
func Find(ctx context.Context, q db.Querier, f Filter) ([]Info, error) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"subject", f.Subject}, {"project_id", f.ProjectID}, {"kind", f.Kind}, {"store", f.Store}} {
		if c.v != "" {
			where, args = append(where, c.col+" = ?"), append(args, c.v)
		}
	}
	if f.Active {
		where = append(where, "state IN ('pending', 'running')")
	}
	if !f.Since.IsZero() {
		where, args = append(where, "(created_at >= ? OR finished_at >= ?)"), append(args, ts(f.Since), ts(f.Since))
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	cond := ""
	if len(where) > 0 {
		cond = "WHERE " + strings.Join(where, " AND ")
	}
	return db.QueryRows(ctx, q, scanInfo, `SELECT id, kind, subject, request_id, project_id, state, attempts,
COALESCE(lease_owner, ''), host, last_error, created_at, updated_at, lease_until, finished_at, bytes_done, bytes_total,
started_at, moved_at, store FROM tasks `+cond+` ORDER BY created_at DESC, id LIMIT ?`, append(args, f.Limit)...)
}

// List returns the tasks about subject (all tasks when subject is empty),
// newest first, at most limit.
func List(ctx context.Context, q db.Querier, subject string, limit int) ([]Info, error) {
	return Find(ctx, q, Filter{Subject: subject, Limit: limit})
}

func scanInfo(r db.Row) (Info, error) {
	var i Info
	var state string
	var created, updated, lease, finished, started, moved db.Timestamp
	err := r.Scan(&i.ID, &i.Kind, &i.Subject, &i.RequestID, &i.ProjectID, &state, &i.Attempts, &i.Node, &i.Host, &i.LastError,
		&created, &updated, &lease, &finished, &i.BytesDone, &i.BytesTotal, &started, &moved, &i.Store)
	i.State = State(state)
	i.CreatedAt, i.UpdatedAt, i.LeaseUntil, i.FinishedAt = created.Time, updated.Time, lease.Time, finished.Time
	i.StartedAt, i.MovedAt = started.Time, moved.Time
	return i, err
}
