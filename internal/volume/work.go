package volume

import (
	"context"
	"io"
	"time"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/task"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// The volume service's background work runs as durable tasks
// (internal/task): a request records the task in the transaction that
// records the volume's transitional status, any node's runner claims it,
// and a node that dies mid-way has its task resumed by another node once
// the lease runs out. A task finishes in the same transaction that moves
// the volume out of its transitional status, fenced by the task's lease.

// Kinds of durable background work, registered with the task runner.
const (
	workCreate    = "volume.create"
	workClone     = "volume.clone"
	workFromImage = "volume.from_image"
	workUpload    = "volume.upload"
	workExtend    = "volume.extend"
)

// maxAttempts bounds how often work is claimed (a node dying mid-way
// counts) before it is failed for good: the volume goes to error or back
// to its status.
const maxAttempts = 3

// workPayload is a volume task's payload.
type workPayload struct {
	Size          int64  `json:"size,omitempty"`
	AZ            string `json:"az,omitempty"`
	ImageID       string `json:"image_id,omitempty"`
	ImageEndpoint string `json:"image_endpoint,omitempty"`
	SourceHost    string `json:"source_host,omitempty"`
	// SnapshotID is the snapshot a volume is reverted to.
	SnapshotID string `json:"snapshot_id,omitempty"`
	// Token is the caller's token, used for the image service calls made
	// on the caller's behalf (as Cinder passes the request context).
	Token           string `json:"token,omitempty"`
	DiskFormat      string `json:"disk_format,omitempty"`
	ContainerFormat string `json:"container_format,omitempty"`
	Store           string `json:"store,omitempty"`
	PreviousStatus  string `json:"previous_status,omitempty"`
	ProjectID       string `json:"project_id,omitempty"`
	// VolumeID is the volume a backup is restored into.
	VolumeID string `json:"volume_id,omitempty"`
	// NewVolume marks a restore into a volume created from the backup: a
	// failure puts that volume in error (not error_restoring), as Cinder.
	NewVolume bool `json:"new_volume,omitempty"`
	// BackupID is the backup a volume is created from.
	BackupID string `json:"backup_id,omitempty"`
}

// work is a claimed volume task.
type work struct {
	VolumeID, Kind, RequestID string
	Payload                   workPayload
	t                         *task.Task
}

// progress counts the bytes read from r (size of them expected, -1 when
// not known) as the work's progress.
func (w *work) progress(r io.Reader, size int64) io.Reader {
	w.t.SetTotal(size)
	return w.t.Reader(r)
}

// registerKinds registers kinds with r, each run by run, which fails the
// task instead when giveUp (the task's attempts are spent).
func registerKinds(r *task.Runner, run func(ctx context.Context, t *task.Task, giveUp bool) error, kinds ...string) {
	for _, kind := range kinds {
		r.Register(task.Kind{Name: kind, MaxAttempts: maxAttempts,
			Run:    func(ctx context.Context, t *task.Task) error { return run(ctx, t, false) },
			GiveUp: func(ctx context.Context, t *task.Task, _ error) error { return run(ctx, t, true) }})
	}
}

// registerWork tells the task runner how to run and give up the
// service's work: the volume kinds, the kinds whose subject is a snapshot
// or a backup, and moves.
func (s *Service) registerWork(r *task.Runner) {
	registerKinds(r, s.runWork, workCreate, workClone, workFromImage, workFromBackup, workUpload, workFromSnapshot,
		workRevert, workDeleteCascade, workExtend)
	registerKinds(r, s.runSnapshotWork, workSnapshot, workSnapshotDelete)
	registerKinds(r, s.runBackupWork, workBackup, workBackupRestore, workBackupDelete)
	registerKinds(r, s.runMigrate, workMigrate)
}

// addWork records work in the caller's transaction, so a volume's status
// and the work that moves it on exist together or not at all. The caller
// wakes the runner after the commit.
func (s *Service) addWork(ctx context.Context, tx *db.Tx, volumeID, kind string, p workPayload) error {
	_, err := s.tasks.Add(ctx, tx, task.Spec{Kind: kind, Subject: volumeID, Payload: p, RequestID: api.RequestID(ctx),
		ProjectID: p.ProjectID, Store: p.Store})
	return err
}

// wake starts committed work without waiting for the runner's poll.
func (s *Service) wake() { s.tasks.Wake() }

// runWork runs (or, giving up, rolls back) one claimed volume task. Work
// whose volume is gone (force-deleted) has nothing left to do.
func (s *Service) runWork(ctx context.Context, t *task.Task, giveUp bool) error {
	w := &work{VolumeID: t.Subject, Kind: t.Kind, RequestID: t.RequestID, t: t}
	if err := t.Decode(&w.Payload); err != nil {
		return err
	}
	v, err := getVolume(ctx, s.deps.DB, w.VolumeID)
	if errs.KindOf(err) == errs.NotFound {
		if w.Kind == workFromBackup {
			// Force-deleted before it was restored into: the backup it
			// held goes back to available.
			return releaseRestoringBackup(ctx, s.deps.DB, w.Payload.BackupID, w.VolumeID)
		}
		return nil
	}
	if err != nil {
		return task.Retry(err)
	}
	switch w.Kind {
	case workUpload:
		return s.runUpload(ctx, w, v, giveUp)
	case workRevert:
		return s.runRevert(ctx, w, v, giveUp)
	case workDeleteCascade:
		return s.runDeleteCascade(ctx, w, v, giveUp)
	case workExtend:
		return s.runExtend(ctx, w, v, giveUp)
	}
	return s.runCreate(ctx, w, v, giveUp)
}

// settle writes the volume's final state of w in one transaction with the
// end of its task: fail == nil completes it, otherwise it fails with fail.
// A node that lost the task's lease writes nothing (task.ErrLeaseLost).
func (s *Service) settle(ctx context.Context, w *work, fail error, write func(tx *db.Tx) error) error {
	ctx = context.WithoutCancel(ctx) // the outcome is recorded even while stopping
	return s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if err := write(tx); err != nil {
			return err
		}
		if fail != nil {
			return w.t.Fail(ctx, tx, fail)
		}
		return w.t.Complete(ctx, tx)
	})
}

// Run implements service.Runner: at start it removes backend snapshots and
// volumes that have no row (the work itself runs on the task runner). With
// a runner of its own (no shared one in Deps) it runs that too, until ctx
// ends.
func (s *Service) Run(ctx context.Context) error {
	s.sweepSnapshotOrphans(ctx)
	s.sweepOrphans(ctx)
	if s.ownTasks {
		return s.tasks.Run(ctx)
	}
	return nil
}

// sweepOrphans deletes backend volumes that have no row, or whose row puts
// the volume on another backend while it is not moving. A volume's row is
// written before its data and removed after it, so data without a row is
// left over: a process stopped between a force-delete and the end of that
// volume's create. Data on a backend other than the volume's is the source
// of a move whose node stopped right after switching the volume over (or
// an abandoned create's, rescheduled elsewhere). Failures are logged; the
// next start tries again.
func (s *Service) sweepOrphans(ctx context.Context) {
	for _, b := range s.backends {
		l, ok := b.drv.(driver.Lister)
		if !ok {
			continue
		}
		ids, err := l.List(ctx)
		if err != nil {
			s.deps.Logger.Error("listing backend volumes", "backend", b.cfg.Name, "err", err)
			continue
		}
		for _, id := range ids {
			v, err := getVolumeRow(ctx, s.deps.DB, id)
			if err == nil && (deref(v.Host) == b.cfg.Name || migrating(v)) || err != nil && errs.KindOf(err) != errs.NotFound {
				continue // the volume's data (or the lookup failed: keep it)
			}
			if err := b.drv.Delete(ctx, id); err != nil {
				// NotFound: deleted meanwhile with its row (another node
				// serving the volume's delete), not an orphan.
				if errs.KindOf(err) != errs.NotFound {
					s.deps.Logger.Error("deleting orphaned volume data", "backend", b.cfg.Name, "volume", id, "err", err)
				}
				continue
			}
			s.deps.Logger.Warn("deleted volume data without a volume", "backend", b.cfg.Name, "volume", id)
		}
	}
}

// ownRunnerPoll is how often a service-owned task runner polls (tests
// shorten it).
var ownRunnerPoll = 2 * time.Second
