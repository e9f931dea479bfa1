package task

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// The nodes table: every runner registers its node when it starts,
// heartbeats with each lease renewal and records its stop, so that an
// operator (`ashlar status`) sees the nodes sharing the database, which of
// them hold which tasks, and which stopped heartbeating without stopping
// (stale: killed, hung or cut off; their tasks are taken over once their
// leases run out). A node's row lives until Retention after it went.

// NodeState is a node's condition as its row tells it.
type NodeState string

// The states of a node.
const (
	// NodeUp heartbeats within its lease.
	NodeUp NodeState = "up"
	// NodeStale stopped heartbeating without recording a stop: its
	// leases have run out and its tasks are any node's to take over.
	NodeStale NodeState = "stale"
	// NodeStopped shut down cleanly, handing its tasks back.
	NodeStopped NodeState = "stopped"
)

// Node is one node as registered.
type Node struct {
	ID, Address, Hostname, Version string
	PID                            int
	Services                       []string
	StartedAt, HeartbeatAt         time.Time
	// AliveUntil is the last heartbeat plus the node's lease.
	AliveUntil time.Time
	// StoppedAt is set once the node shut down cleanly.
	StoppedAt time.Time
}

// State is the node's state at now.
func (n Node) State(now time.Time) NodeState {
	switch {
	case !n.StoppedAt.IsZero():
		return NodeStopped
	case now.After(n.AliveUntil):
		return NodeStale
	}
	return NodeUp
}

// register records this node as up (again, after a prune or a database
// outage removed or aged its row).
func (r *Runner) register(ctx context.Context) error {
	host, _ := os.Hostname()
	now := time.Now()
	_, err := r.db.ExecContext(ctx, `INSERT INTO nodes (id, address, hostname, pid, version, services, started_at,
heartbeat_at, alive_until) VALUES (?,?,?,?,?,?,?,?,?)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, alive_until = excluded.alive_until, stopped_at = NULL`,
		r.o.Node, r.o.Address, host, os.Getpid(), r.o.Version, strings.Join(r.o.Services, ","), ts(now), ts(now),
		ts(now.Add(r.o.Lease)))
	return err
}

// heartbeat extends this node's life by a lease, registering it again if
// its row is gone.
func (r *Runner) heartbeat(ctx context.Context) {
	now := time.Now()
	ok, err := db.Changed(ctx, r.db, `UPDATE nodes SET heartbeat_at = ?, alive_until = ? WHERE id = ?`,
		ts(now), ts(now.Add(r.o.Lease)), r.o.Node)
	if err == nil && !ok {
		err = r.register(ctx)
	}
	if err != nil && ctx.Err() == nil {
		r.o.Logger.Error("node heartbeat", "err", err)
	}
}

// stopNode records a clean stop of node id.
func stopNode(ctx context.Context, q db.Querier, id string) error {
	now := ts(time.Now())
	_, err := q.ExecContext(ctx, `UPDATE nodes SET stopped_at = ?, alive_until = ? WHERE id = ?`, now, now, id)
	return err
}

// Nodes lists the registered nodes, most recently started first.
func Nodes(ctx context.Context, q db.Querier) ([]Node, error) {
	return db.QueryRows(ctx, q, func(r db.Row) (Node, error) {
		var n Node
		var services string
		var started, beat, alive, stopped db.Timestamp
		err := r.Scan(&n.ID, &n.Address, &n.Hostname, &n.PID, &n.Version, &services, &started, &beat, &alive, &stopped)
		if services != "" {
			n.Services = strings.Split(services, ",")
		}
		n.StartedAt, n.HeartbeatAt, n.AliveUntil, n.StoppedAt = started.Time, beat.Time, alive.Time, stopped.Time
		return n, err
	}, `SELECT id, address, hostname, pid, version, services, started_at, heartbeat_at, alive_until, stopped_at
FROM nodes ORDER BY started_at DESC, id`)
}

// HostAlive reports whether a node advertising address is alive now: the
// host a task with that Spec.Host would run on.
func HostAlive(ctx context.Context, q db.Querier, address string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM nodes WHERE address = ? AND alive_until >= ?`,
		address, ts(time.Now())).Scan(&n)
	return n > 0, err
}
