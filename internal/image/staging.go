package image

import (
	"context"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	tasks "github.com/ashlar-dev/ashlar/internal/task"
)

// Staging across nodes. A shared staging store ([image] staging_store =
// s3, or a staging_dir on a shared mount with staging_shared = true) is
// the same everywhere: data staged through one node is imported by any.
// A node-local one is not, so, as Glance does with its
// worker_self_reference_url:
//
//   - a stage records the staging node's advertised address on the image
//     (os_glance_stage_host, hidden);
//   - a glance-direct import of it runs on that node: the import task
//     names the host, and only a node advertising it claims the task
//     (Glance proxies the import request itself; here the request does
//     not run the import, a task does, so the task is what goes there);
//   - an import requested while no node of that host is alive is refused
//     with 503 (Glance: 504 "Stage host is unavailable"), and an import
//     whose host dies before it finishes is failed by another node with
//     the reason in the task's message and os_glance_failed_import, the
//     image back to queued, to be staged again;
//   - what a node's staging directory keeps that no image needs any more
//     (data staged on it whose upload or import another node rolled back,
//     or whose image was deleted through another node) is swept by that
//     node at start and every stagingSweepInterval.

// propStageHost names the node holding an image's staged data.
const propStageHost = "os_glance_stage_host"

// stagingSweepInterval is how often a node sweeps its node-local staging.
const stagingSweepInterval = 10 * time.Minute

// localStaging says staged data stays on the node that staged it while
// other nodes share the database: not with a shared staging store, nor on
// SQLite, which serves one node.
func (s *Service) localStaging() bool {
	return !s.cfg.Image.StagingShared && s.deps.DB.Postgres()
}

// stagedOn is the host an image's staged data must be imported on, or ""
// when any node can (shared staging, one node, or data staged before
// hosts were recorded).
func (s *Service) stagedOn(im *Image) string {
	if !s.localStaging() {
		return ""
	}
	return im.Props[propStageHost]
}

// stageHostProp is the property a stage records: this node's address
// (its task runner's, which claims the tasks naming it) when the staging
// store is its own.
func (s *Service) stageHostProp() map[string]*string {
	if !s.localStaging() || s.tasks.Address() == "" {
		return nil
	}
	return map[string]*string{propStageHost: strp(s.tasks.Address())}
}

// checkStageHost refuses a glance-direct import whose staged data is on a
// node that is not running.
func (s *Service) checkStageHost(ctx context.Context, job *importJob) error {
	if job.method != "glance-direct" || job.host == "" || job.host == s.tasks.Address() {
		return nil
	}
	alive, err := tasks.HostAlive(ctx, s.deps.DB, job.host)
	if err != nil {
		return err
	}
	if !alive {
		return errs.E(errs.Unavailable, "Stage host is unavailable: the node that holds the image's staged data (%s) "+
			"is not running. Import again once it is back, or delete the image and stage its data again.", job.host)
	}
	return nil
}

// strandedMsg is the reason of an import failed because its stage host
// died.
func strandedMsg(host string) string {
	return "Task failed: the node that holds the image's staged data (" + host +
		") stopped before the import finished; stage the image data again"
}

// runStagingSweeps sweeps a node-local staging store at start and every
// stagingSweepInterval until ctx ends.
func (s *Service) runStagingSweeps(ctx context.Context) {
	if s.cfg.Image.StagingShared {
		return
	}
	t := time.NewTicker(stagingSweepInterval)
	defer t.Stop()
	for {
		if err := s.sweepStaging(ctx); err != nil && ctx.Err() == nil {
			s.deps.Logger.Warn("sweeping the staging directory", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweepStaging deletes the staged objects no image needs: the image is
// gone, or neither uploading (staged, waiting for its import) nor
// importing. Each is checked and deleted under the image row's lock, so a
// stage starting on it waits.
func (s *Service) sweepStaging(ctx context.Context) error {
	staging := s.stores.Staging()
	l, ok := staging.Driver().(store.Lister)
	if !ok {
		return nil
	}
	var keys []string
	if err := l.List(ctx, func(key string) error { keys = append(keys, key); return nil }); err != nil {
		return err
	}
	swept := 0
	for _, key := range keys {
		err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
			needed, err := stagedDataNeeded(ctx, tx, key)
			if err != nil || needed {
				return err
			}
			if err := staging.Delete(ctx, key); err != nil && !errs.Is(err, errs.NotFound) {
				return err
			}
			swept++
			return nil
		})
		if err != nil {
			return err
		}
	}
	if swept > 0 {
		s.deps.Logger.Info("swept staged data no image needs", "objects", swept)
	}
	return nil
}
