package volume

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/volume/driver"
)

// Kinds of durable background work.
const (
	workCreate    = "create"
	workClone     = "clone"
	workFromImage = "from_image"
	workUpload    = "upload"
)

// maxAttempts bounds how often work is retried across restarts before it
// is failed for good (the volume goes to error or back to its status).
const maxAttempts = 3

// workPayload is the JSON payload of a volume_work row.
type workPayload struct {
	Size          int64  `json:"size,omitempty"`
	AZ            string `json:"az,omitempty"`
	ImageID       string `json:"image_id,omitempty"`
	ImageEndpoint string `json:"image_endpoint,omitempty"`
	SourceHost    string `json:"source_host,omitempty"`
	// Token is the caller's token, used for the image service calls made
	// on the caller's behalf (as Cinder passes the request context).
	Token           string `json:"token,omitempty"`
	DiskFormat      string `json:"disk_format,omitempty"`
	ContainerFormat string `json:"container_format,omitempty"`
	Store           string `json:"store,omitempty"`
	PreviousStatus  string `json:"previous_status,omitempty"`
	ProjectID       string `json:"project_id,omitempty"`
}

type work struct {
	ID, VolumeID, Kind string
	Payload            workPayload
	Attempts           int
	RequestID          string
}

// addWork records work in the caller's transaction, so a volume and the
// work that finishes it exist together or not at all.
func (s *Service) addWork(ctx context.Context, tx *db.Tx, volumeID, kind string, p workPayload, requestID string) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO volume_work (id, volume_id, kind, payload, request_id, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		uuid.NewString(), volumeID, kind, string(b), requestID, db.Now())
	return err
}

// wake nudges the worker after new work was committed.
func (s *Service) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// pollInterval is how often the worker looks for work it was not woken for.
var pollInterval = 2 * time.Second

// workers bounds concurrent background jobs.
const workers = 4

// Run implements service.Runner: it resumes the work a previous process
// left behind, then executes new work until ctx is cancelled. Work cut off
// by cancellation stays recorded and is resumed by the next start.
func (s *Service) Run(ctx context.Context) error {
	if !s.deps.DB.Postgres() {
		// SQLite serves one process: leases left behind are a dead
		// predecessor's, so take its work over now instead of after expiry.
		if _, err := s.deps.DB.ExecContext(ctx, `UPDATE volume_work SET lease_until = NULL, lease_owner = NULL`); err != nil {
			return err
		}
	}
	s.sweepOrphans(ctx)
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		items, err := s.pendingWork(ctx)
		if err != nil && ctx.Err() == nil {
			s.deps.Logger.Error("loading volume work", "err", err)
		}
		for _, w := range items {
			if _, busy := s.running.LoadOrStore(w.ID, struct{}{}); busy {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				s.running.Delete(w.ID)
				return ctx.Err()
			}
			wg.Go(func() {
				defer func() { <-sem; s.running.Delete(w.ID) }()
				s.execute(ctx, w)
			})
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.kick:
		case <-t.C:
		}
	}
}

// sweepOrphans deletes backend volumes that have no row. A volume's row is
// written before its data and removed after it, so data without a row is
// left over: a process stopped between a force-delete and the end of that
// volume's create. Failures are logged; the next start tries again.
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
			if _, err := getVolume(ctx, s.deps.DB, id); errs.KindOf(err) != errs.NotFound {
				continue // has a row (or the lookup failed: keep it)
			}
			if err := b.drv.Delete(ctx, id); err != nil && errs.KindOf(err) != errs.NotFound {
				s.deps.Logger.Error("deleting orphaned volume data", "backend", b.cfg.Name, "volume", id, "err", err)
				continue
			}
			s.deps.Logger.Warn("deleted volume data without a volume", "backend", b.cfg.Name, "volume", id)
		}
	}
}

// leaseDuration is how long a claim on work lasts without renewal: the
// delay before another process takes over the work of a dead one.
var leaseDuration = 30 * time.Second

func (s *Service) pendingWork(ctx context.Context) ([]*work, error) {
	rows, err := s.deps.DB.QueryContext(ctx, `SELECT id, volume_id, kind, payload, attempts, request_id FROM volume_work
		WHERE lease_until IS NULL OR lease_until < ? ORDER BY created_at LIMIT 100`, db.Now())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*work
	for rows.Next() {
		w := &work{}
		var payload string
		var reqID *string
		if err := rows.Scan(&w.ID, &w.VolumeID, &w.Kind, &payload, &w.Attempts, &reqID); err != nil {
			return nil, err
		}
		w.RequestID = deref(reqID)
		if err := json.Unmarshal([]byte(payload), &w.Payload); err != nil {
			return nil, fmt.Errorf("work %s: %w", w.ID, err)
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// claim takes the lease on w and counts the attempt (before starting, so
// work that kills the process is not retried forever). It reports false
// when another process holds the lease.
func (s *Service) claim(ctx context.Context, w *work) bool {
	now := db.Now()
	res, err := s.deps.DB.ExecContext(ctx, `UPDATE volume_work SET attempts = attempts + 1, lease_owner = ?, lease_until = ?
		WHERE id = ? AND (lease_until IS NULL OR lease_until < ?)`, s.owner, db.Timestamp{Time: now.Time.Add(leaseDuration)}, w.ID, now)
	if err != nil {
		return false
	}
	n, _ := res.RowsAffected()
	return n == 1
}

// renew extends the lease on w while it runs, until ctx ends.
func (s *Service) renew(ctx context.Context, w *work) {
	t := time.NewTicker(leaseDuration / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = s.deps.DB.ExecContext(ctx, `UPDATE volume_work SET lease_until = ? WHERE id = ? AND lease_owner = ?`,
				db.Timestamp{Time: time.Now().Add(leaseDuration)}, w.ID, s.owner)
		}
	}
}

// execute runs one piece of work under a lease.
func (s *Service) execute(ctx context.Context, w *work) {
	if ctx.Err() != nil || !s.claim(ctx, w) {
		return
	}
	w.Attempts++
	rctx, stopRenew := context.WithCancel(ctx)
	defer stopRenew()
	go s.renew(rctx, w)
	v, err := getVolume(ctx, s.deps.DB, w.VolumeID)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			s.finishWork(ctx, w)
		}
		return
	}
	giveUp := w.Attempts > maxAttempts
	switch w.Kind {
	case workCreate, workClone, workFromImage:
		err = s.runCreate(ctx, w, v, giveUp)
	case workUpload:
		err = s.runUpload(ctx, w, v, giveUp)
	default:
		err = fmt.Errorf("unknown work kind %q", w.Kind)
	}
	if ctx.Err() != nil {
		// Shutting down: release the row for the next start.
		_, _ = s.deps.DB.ExecContext(context.WithoutCancel(ctx), `UPDATE volume_work SET lease_until = NULL, lease_owner = NULL WHERE id = ? AND lease_owner = ?`, w.ID, s.owner)
		return
	}
	if err != nil {
		s.deps.Logger.Error("volume work failed", "volume", w.VolumeID, "kind", w.Kind, "err", err)
	}
	s.finishWork(context.WithoutCancel(ctx), w)
}

// dropWork deletes a volume's recorded work (force-delete), so none of it
// runs after the volume is gone.
func dropWork(ctx context.Context, q db.Querier, volumeID string) error {
	_, err := q.ExecContext(ctx, `DELETE FROM volume_work WHERE volume_id = ?`, volumeID)
	return err
}

func (s *Service) finishWork(ctx context.Context, w *work) {
	if _, err := s.deps.DB.ExecContext(ctx, `DELETE FROM volume_work WHERE id = ?`, w.ID); err != nil {
		s.deps.Logger.Error("finishing volume work", "work", w.ID, "err", err)
	}
}
