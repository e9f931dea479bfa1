package image

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
)

// The image service's own background machinery, kept together so the
// shared durable task system (internal/task) can replace it in one place:
// pending objects with heartbeats (image_pending_objects: every object is
// recorded before its first byte is written and forgotten once it is a
// location or deleted), the sweeps that delete what dead writers left,
// import tasks started as goroutines of this process with their own
// heartbeat, and the start-up and periodic recovery of both. This file
// holds its own SQL (the pending objects and the liveness of tasks).

// node names this image API process among the nodes sharing the database.
func (s *Service) node() string { return s.cfg.Image.PublicURL }

// StaleAfter is how long a pending object may go without a heartbeat before
// any node treats it as left behind by a dead process.
const StaleAfter = 2 * time.Minute

func (s *Service) addPending(ctx context.Context, q db.Querier, imageID, storeID, key string) error {
	_, err := q.ExecContext(ctx, `INSERT INTO image_pending_objects (image_id, store, object_key, node, heartbeat_at)
VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING`, imageID, storeID, key, s.node(), db.Now())
	return err
}

// keepAlive refreshes the heartbeat of a pending object until stop is
// called, so other nodes leave the write alone.
func (s *Service) keepAlive(storeID, key string) (stop func()) {
	return s.heartbeat("UPDATE image_pending_objects SET heartbeat_at = ? WHERE store = ? AND object_key = ?", storeID, key)
}

// taskAlive refreshes a running task's updated_at so other nodes do not
// take it for a dead node's.
func (s *Service) taskAlive(taskID string) (stop func()) {
	return s.heartbeat("UPDATE image_tasks SET updated_at = ? WHERE id = ? AND status = 'processing'", taskID)
}

// heartbeat runs query with the current time as its first argument (then
// args) every StaleAfter/4 until stop is called.
func (s *Service) heartbeat(query string, args ...any) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(StaleAfter / 4)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_, _ = s.deps.DB.ExecContext(context.Background(), query, append([]any{db.Now()}, args...)...)
			}
		}
	}()
	return func() { close(done) }
}

func (s *Service) dropPending(ctx context.Context, q db.Querier, storeID, key string) error {
	_, err := q.ExecContext(ctx, "DELETE FROM image_pending_objects WHERE store = ? AND object_key = ?", storeID, key)
	return err
}

func (s *Service) storeByID(id string) *store.Store {
	if id == store.StagingID {
		return s.stores.Staging()
	}
	st, _ := s.stores.Get(id)
	return st
}

// sweepPending deletes the pending objects of one image and forgets them;
// objects that are already gone count as deleted.
func (s *Service) sweepPending(ctx context.Context, imageID string) {
	s.sweep(ctx, "image_id = ?", imageID)
}

// sweepDead deletes what dead writers left: this node's rows at start-up
// (nothing of ours runs yet) and any node's rows without a recent heartbeat.
func (s *Service) sweepDead(ctx context.Context, includeOwn bool) {
	stale := db.Timestamp{Time: time.Now().Add(-StaleAfter)}
	if includeOwn {
		s.sweep(ctx, "node = ? OR heartbeat_at < ?", s.node(), stale)
	} else {
		s.sweep(ctx, "heartbeat_at < ?", stale)
	}
}

func (s *Service) sweep(ctx context.Context, where string, args ...any) {
	pairs, err := queryPairs(ctx, s.deps.DB, "SELECT store, object_key FROM image_pending_objects WHERE "+where, args...)
	if err != nil {
		s.deps.Logger.Error("listing pending objects", "err", err)
		return
	}
	for _, p := range pairs {
		o := struct{ store, key string }{p[0], p[1]}
		if st := s.storeByID(o.store); st != nil {
			// Hidden leftovers of a write killed with its process
			// (multipart parts) go first, then the object itself.
			if err := st.Recover(ctx, o.key); err != nil {
				s.deps.Logger.Warn("recovering interrupted write", "store", o.store, "key", o.key, "err", err)
				continue
			}
			if err := st.Delete(ctx, o.key); err != nil && !errs.Is(err, errs.NotFound) {
				s.deps.Logger.Warn("deleting orphaned object", "store", o.store, "key", o.key, "err", err)
				continue
			}
		}
		_ = s.dropPending(ctx, s.deps.DB, o.store, o.key)
	}
}

// recover runs at start-up: objects whose writes never finished are
// deleted, and no image stays in saving or importing.
func (s *Service) recover(ctx context.Context) error {
	s.sweepDead(ctx, true)
	if err := s.requeueOrphans(ctx); err != nil {
		return fmt.Errorf("recovering uploads: %w", err)
	}
	return s.recoverImports(ctx, true)
}

// requeueOrphans puts back to queued the images in saving whose write no
// node is doing any more (no pending object left).
func (s *Service) requeueOrphans(ctx context.Context) error {
	_, err := s.deps.DB.ExecContext(ctx, `UPDATE images SET status = ?, updated_at = ? WHERE status = ?
AND NOT EXISTS (SELECT 1 FROM image_pending_objects p WHERE p.image_id = images.id)`, StatusQueued, db.Now(), StatusSaving)
	return err
}

// reap runs the dead-writer sweep periodically, for uploads of nodes that
// died and will not come back to recover them.
func (s *Service) reap(ctx context.Context) {
	t := time.NewTicker(StaleAfter / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sweepDead(ctx, false)
			if err := s.requeueOrphans(ctx); err != nil {
				s.deps.Logger.Warn("requeueing orphaned uploads", "err", err)
			}
			if err := s.recoverImports(ctx, false); err != nil {
				s.deps.Logger.Warn("recovering imports of dead nodes", "err", err)
			}
		}
	}
}

// recoverImports fails the imports whose node died: at start-up this
// node's (none of them runs yet), and any node's task that stopped
// refreshing updated_at. Their images go back to where the user can retry.
func (s *Service) recoverImports(ctx context.Context, includeOwn bool) error {
	stale := db.Timestamp{Time: time.Now().Add(-StaleAfter)}
	q := "SELECT id, image_id FROM image_tasks WHERE status IN ('pending', 'processing') AND updated_at < ?"
	args := []any{stale}
	if includeOwn {
		q = "SELECT id, image_id FROM image_tasks WHERE status IN ('pending', 'processing') AND (node = ? OR updated_at < ?)"
		args = []any{s.node(), stale}
	}
	tasks, err := queryPairs(ctx, s.deps.DB, q, args...)
	if err != nil {
		return err
	}
	for _, t := range tasks {
		s.abandonImport(ctx, t[1], t[0], "Task interrupted: the node running it stopped")
	}
	return nil
}

// abandonImport is failImport for an import whose node died.
func (s *Service) abandonImport(ctx context.Context, imageID, taskID, why string) {
	im, err := loadImage(ctx, s.deps.DB, imageID)
	if err != nil || im.Props[propTask] != taskID {
		// the image is gone or no longer locked by this task
		_ = failTask(ctx, s.deps.DB, taskID, why)
		return
	}
	pending := strings.Split(im.Props[propImporting], ",")
	job := &importJob{image: im, taskID: taskID}
	s.failImport(ctx, job, slices.DeleteFunc(pending, func(s string) bool { return s == "" }), StatusUploading, why)
}

// queryPairs runs a query of two text columns and returns its rows; a row
// that fails to scan is an error, not silently skipped.
func queryPairs(ctx context.Context, q db.Querier, query string, args ...any) ([][2]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var p [2]string
		if err := rows.Scan(&p[0], &p[1]); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// launchImport records the import task (run by this node) and runs it in a
// goroutine of this process, cancelled by Close or the end of Run.
func (s *Service) launchImport(ctx context.Context, job *importJob) error {
	if err := s.startImport(ctx, job); err != nil {
		return err
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		stop := s.taskAlive(job.taskID)
		defer stop()
		s.runImport(s.bgCtx, job)
	}()
	return nil
}

// startImport takes the image's import lock, records the task and marks
// the image importing, in one transaction.
func (s *Service) startImport(ctx context.Context, job *importJob) error {
	im := job.image
	now := db.Now()
	input, _ := json.Marshal(map[string]any{"image_id": im.ID, "import_req": job.importReq, "backend": job.stores})
	return s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		newStatus := StatusImporting
		if job.method == "copy-image" {
			newStatus = StatusActive
		}
		ok, err := lockForImport(ctx, tx, im.ID, im.Status, newStatus, propTask)
		if err != nil {
			return err
		}
		if !ok {
			return errs.E(errs.Conflict, "Image %s changed while the import was being requested; try again.", im.ID)
		}
		if err := setProps(ctx, tx, im.ID, map[string]*string{propTask: strp(job.taskID),
			propImporting: strp(strings.Join(job.stores, ",")), propFailed: strp("")}); err != nil {
			return err
		}
		return insertTask(ctx, tx, task{ID: job.taskID, ImageID: im.ID, Type: "api_image_import", Status: "processing",
			Owner: job.caller.ProjectID, UserID: job.caller.UserID, RequestID: job.requestID, Input: string(input),
			CreatedAt: now, UpdatedAt: now, ExpiresAt: db.Timestamp{Time: now.Time.Add(48 * time.Hour)}}, s.node())
	})
}
