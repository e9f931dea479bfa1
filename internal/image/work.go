package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	tasks "github.com/ashlar-dev/ashlar/internal/task"
)

// The image service's durable work (internal/task). Every object is
// written, and every object that must go is deleted, under a task recorded
// in the same transaction as the image change that calls for it:
//
//   - image.upload: begun by PUT /file and PUT /stage with the move to
//     saving/uploading, finished with the image's activation (or staged
//     size). If its node dies first, another node purges what was written
//     and puts the image back to queued.
//   - image.purge: begun by a delete with the rows that named the objects
//     (an image's copies and staged data, one store copy); the request
//     deletes them, and if it cannot (store down, node dead) any node
//     retries until they are gone.
//   - image.import: added by POST /import and run by any node's runner; a
//     node dying mid-import has the import resumed from the stores still
//     pending, and an import interrupted too often is rolled back (its
//     partial copies purged) with the reason on its task.

// Kinds of image work.
const (
	kindUpload = "image.upload"
	kindPurge  = "image.purge"
	kindImport = "image.import"
)

// storedObject names an object in a store.
type storedObject struct {
	Store string `json:"store"`
	Key   string `json:"key"`
}

// uploadWork is an upload's record: the object being written and the
// status the image is in while it is.
type uploadWork struct {
	storedObject
	During string `json:"during"`
}

// purgeWork is the objects a delete must remove.
type purgeWork struct {
	Objects []storedObject `json:"objects"`
}

// importWork is an accepted import, as any node needs it to run it.
type importWork struct {
	TaskID    string   `json:"task_id"`
	Method    string   `json:"method"`
	URI       string   `json:"uri,omitempty"`
	Stores    []string `json:"stores"`
	MustAll   bool     `json:"must_all"`
	ProjectID string   `json:"project_id"`
	UserID    string   `json:"user_id"`
}

// purgeAttempts bounds how often a purge is retried (with backoff up to
// a minute: about ten minutes of a store being unreachable).
const purgeAttempts = 12

// registerWork tells the task runner how to run and recover image work.
func (s *Service) registerWork(r *tasks.Runner) {
	r.Register(tasks.Kind{Name: kindUpload, MaxAttempts: purgeAttempts, Run: s.recoverUpload})
	r.Register(tasks.Kind{Name: kindPurge, MaxAttempts: purgeAttempts, Run: s.runPurge})
	r.Register(tasks.Kind{Name: kindImport, Run: s.runImportTask, GiveUp: s.giveUpImport})
}

// storeByID is a configured store or the staging store; nil when the id
// is not configured (any more).
func (s *Service) storeByID(id string) *store.Store {
	if id == store.StagingID {
		return s.stores.Staging()
	}
	st, _ := s.stores.Get(id)
	return st
}

// purge removes an object and whatever a write to it that died left
// behind (multipart parts, temp files); an object already gone is fine.
func (s *Service) purge(ctx context.Context, o storedObject) error {
	st := s.storeByID(o.Store)
	if st == nil {
		s.deps.Logger.Warn("object in a store that is not configured", "store", o.Store, "key", o.Key)
		return nil
	}
	if err := st.Recover(ctx, o.Key); err != nil {
		return fmt.Errorf("recovering interrupted write of %s in %s: %w", o.Key, o.Store, err)
	}
	if err := st.Delete(ctx, o.Key); err != nil && !errs.Is(err, errs.NotFound) {
		return fmt.Errorf("deleting %s from %s: %w", o.Key, o.Store, err)
	}
	return nil
}

// beginUpload moves the image from queued to during and records the upload
// of key into st, in one transaction.
func (s *Service) beginUpload(ctx context.Context, im *Image, during string, st *store.Store) (*tasks.Task, error) {
	id := im.ID
	var t *tasks.Task
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if err := moveStatus(ctx, tx, id, StatusQueued, during); err != nil {
			return err
		}
		var err error
		t, err = s.tasks.Begin(ctx, tx, tasks.Spec{Kind: kindUpload, Subject: id, ProjectID: im.Owner, Store: st.ID,
			Payload: uploadWork{storedObject{st.ID, id}, during}})
		return err
	})
	if err != nil && t != nil {
		t.Release()
	}
	return t, err
}

// recoverUpload rolls back an upload whose node died: what it wrote goes
// and the image returns to queued.
func (s *Service) recoverUpload(ctx context.Context, t *tasks.Task) error {
	var w uploadWork
	if err := t.Decode(&w); err != nil {
		return err
	}
	if err := s.purge(ctx, w.storedObject); err != nil {
		return tasks.Retry(err)
	}
	if _, err := setStatus(ctx, s.deps.DB, t.Subject, StatusQueued, w.During); err != nil {
		return tasks.Retry(err)
	}
	s.deps.Logger.Warn("rolled back an upload whose node stopped", "image", t.Subject, "store", w.Store)
	return nil
}

// deleteObjects records, in tx, that objects must go (the rows naming them
// go in the same transaction), and returns the task that ensures it.
func (s *Service) deleteObjects(ctx context.Context, tx *db.Tx, imageID string, objects []storedObject) (*tasks.Task, error) {
	return s.tasks.Begin(ctx, tx, tasks.Spec{Kind: kindPurge, Subject: imageID, Payload: purgeWork{objects}})
}

// finishDelete deletes the objects t recorded, now; what cannot be
// deleted now is left to the runner, which retries.
func (s *Service) finishDelete(ctx context.Context, t *tasks.Task) {
	defer t.Release()
	ctx = context.WithoutCancel(ctx)
	if err := s.purgeAll(ctx, t); err != nil {
		s.deps.Logger.Warn("deleting image data; will retry", "image", t.Subject, "err", err)
		return
	}
	if err := t.Complete(ctx, s.deps.DB); err != nil {
		s.deps.Logger.Warn("finishing image data deletion", "image", t.Subject, "err", err)
	}
}

// runPurge is a purge left unfinished by its request (or its node).
func (s *Service) runPurge(ctx context.Context, t *tasks.Task) error {
	return tasks.Retry(s.purgeAll(ctx, t))
}

func (s *Service) purgeAll(ctx context.Context, t *tasks.Task) error {
	var w purgeWork
	if err := t.Decode(&w); err != nil {
		return err
	}
	var failed []error
	for _, o := range w.Objects {
		if err := s.purge(ctx, o); err != nil {
			failed = append(failed, err)
		}
	}
	return errors.Join(failed...)
}

// launchImport takes the image's import lock, records the Glance task and
// the durable task that runs the import, and marks the image importing,
// in one transaction; any node's runner then runs it.
func (s *Service) launchImport(ctx context.Context, job *importJob) error {
	im := job.image
	now := db.Now()
	input, _ := json.Marshal(map[string]any{"image_id": im.ID, "import_req": job.importReq, "backend": job.stores})
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
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
		err = insertTask(ctx, tx, task{ID: job.taskID, ImageID: im.ID, Type: "api_image_import", Status: "processing",
			Owner: job.caller.ProjectID, UserID: job.caller.UserID, RequestID: job.requestID, Input: string(input),
			CreatedAt: now, UpdatedAt: now, ExpiresAt: db.Timestamp{Time: now.Time.Add(48 * time.Hour)}})
		if err != nil {
			return err
		}
		_, err = s.tasks.Add(ctx, tx, tasks.Spec{Kind: kindImport, Subject: im.ID, RequestID: job.requestID, ProjectID: im.Owner,
			Host: job.host, Store: strings.Join(job.stores, ","),
			Payload: importWork{TaskID: job.taskID, Method: job.method, URI: job.uri, Stores: job.stores,
				MustAll: job.mustAll, ProjectID: job.caller.ProjectID, UserID: job.caller.UserID}})
		return err
	})
	if err == nil {
		s.tasks.Wake()
	}
	return err
}

// importOf rebuilds the import t runs from its record and the image as it
// is now: on a resumed attempt, the stores still pending and those that
// failed (the copies already made are the image's locations). It returns
// nil when the import is over: the image is gone or no longer locked by
// this import.
func (s *Service) importOf(ctx context.Context, t *tasks.Task) (*importJob, error) {
	var w importWork
	if err := t.Decode(&w); err != nil {
		return nil, err
	}
	im, err := loadImage(ctx, s.deps.DB, t.Subject)
	if errs.Is(err, errs.NotFound) || err == nil && im.Props[propTask] != w.TaskID {
		_ = failTask(ctx, s.deps.DB, w.TaskID, "Task ended: the image was deleted or its import was taken over")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	job := &importJob{taskID: w.TaskID, image: im, method: w.Method, uri: w.URI, stores: w.Stores,
		mustAll: w.MustAll, caller: &auth.Caller{ProjectID: w.ProjectID, UserID: w.UserID},
		requestID: t.RequestID, stall: s.StallTimeout, host: t.Host, task: t}
	if t.Attempt > 1 {
		// A target the image has now was copied by this import (copy-image
		// only targets stores the image lacked), even if the node died
		// before it could strike the store from the pending list.
		job.failed = splitList(im.Props[propFailed])
		job.stores = nil
		for _, sid := range splitList(im.Props[propImporting]) {
			if !im.HasStore(sid) {
				job.stores = append(job.stores, sid)
			}
		}
		for _, sid := range w.Stores {
			if im.HasStore(sid) {
				job.done = append(job.done, sid)
			}
		}
	}
	return job, nil
}

// runImportTask runs (or resumes) an import. One stranded here (its staged
// data is on a node that is gone) cannot be, and fails.
func (s *Service) runImportTask(ctx context.Context, t *tasks.Task) error {
	if t.Stranded() {
		return tasks.Retry(s.abandonImport(ctx, t, strandedMsg(t.Host)))
	}
	job, err := s.importOf(ctx, t)
	if err != nil || job == nil {
		return tasks.Retry(err)
	}
	return s.runImport(ctx, job)
}

// giveUpImport rolls back an import whose attempts all died with their
// nodes.
func (s *Service) giveUpImport(ctx context.Context, t *tasks.Task, _ error) error {
	return s.abandonImport(ctx, t, "Task interrupted: the node running it stopped")
}

// abandonImport rolls back an import that cannot go on: partial copies in
// the stores still pending are purged, the image goes back to where the
// user can retry and the task says why (msg).
func (s *Service) abandonImport(ctx context.Context, t *tasks.Task, msg string) error {
	job, err := s.importOf(ctx, t)
	if err != nil || job == nil {
		return err
	}
	pending := splitList(job.image.Props[propImporting])
	if err := s.stores.Staging().Recover(ctx, job.image.ID); err != nil {
		s.deps.Logger.Warn("recovering an interrupted download", "image", job.image.ID, "err", err)
	}
	for _, sid := range pending {
		if !job.image.HasStore(sid) {
			if err := s.purge(ctx, storedObject{sid, job.image.ID}); err != nil {
				s.deps.Logger.Warn("purging a partial import copy", "image", job.image.ID, "store", sid, "err", err)
			}
		}
	}
	failed := append(splitList(job.image.Props[propFailed]), pending...)
	return s.failImport(ctx, job, failed, StatusUploading, msg)
}

func splitList(v string) []string {
	return slices.DeleteFunc(strings.Split(v, ","), func(s string) bool { return s == "" })
}
