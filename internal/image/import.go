package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/imageformat"
	tasks "github.com/ashlar-dev/ashlar/internal/task"
)

// Interoperable import (POST /v2/images/{id}/import): glance-direct from
// staging, web-download from a URL, copy-image between stores.

// Import bookkeeping properties, shown as top-level image keys.
const (
	propTask      = "os_glance_import_task"
	propImporting = "os_glance_importing_to_stores"
	propFailed    = "os_glance_failed_import"
)

// importJob is one accepted import: what runImport needs.
type importJob struct {
	taskID    string
	image     *Image
	method    string
	uri       string
	stores    []string
	mustAll   bool
	caller    *auth.Caller
	requestID string
	importReq map[string]any
	// stall abandons a web-download whose source sends nothing this long.
	stall time.Duration
	// host is the node the import must run on (its staged data is in
	// that node's own staging directory), "" for any.
	host string
	// task is the durable task running the import; done and failed are
	// the stores an earlier attempt of it copied to or failed.
	task         *tasks.Task
	done, failed []string
}

func (s *Service) importImage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	c := caller(r)
	im, err := s.getVisible(ctx, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	body, err := decodeObject(r)
	if err != nil {
		return err
	}
	job := &importJob{taskID: uuid.NewString(), image: im, caller: c, importReq: body,
		requestID: api.RequestID(ctx), stall: s.StallTimeout}
	if err := s.parseImportMethod(job, body); err != nil {
		return err
	}
	if err := authorizeImport(c, im, job.method); err != nil {
		return err
	}
	if err := s.parseImportStores(job, body, r.Header.Get("X-Image-Meta-Store")); err != nil {
		return err
	}
	if err := s.checkImportable(job); err != nil {
		return err
	}
	if job.method == "glance-direct" {
		job.host = s.stagedOn(im)
	}
	if err := s.checkStageHost(ctx, job); err != nil {
		return err
	}
	if err := s.launchImport(ctx, job); err != nil {
		return err
	}
	writeEmpty(w, http.StatusAccepted)
	return nil
}

// parseImportMethod reads the method's name, which must be enabled.
func (s *Service) parseImportMethod(job *importJob, body map[string]any) error {
	meth, _ := body["method"].(map[string]any)
	job.method, _ = meth["name"].(string)
	switch job.method {
	case "glance-direct", "web-download", "copy-image":
	default:
		return errs.E(errs.Invalid, "Unknown import method name '%s'.", job.method)
	}
	if !s.methodEnabled(job.method) {
		return errs.E(errs.Invalid, "Import method %s is not enabled.", job.method)
	}
	job.uri, _ = meth["uri"].(string)
	return nil
}

// authorizeImport: importing data needs the owner's members; copy-image
// needs an admin (and an image of another project stays invisible).
func authorizeImport(c *auth.Caller, im *Image, method string) error {
	if method == "copy-image" && c.IsAdmin() {
		return nil
	}
	action := "import_image"
	if method == "copy-image" {
		action = "copy_image"
	}
	if err := enforce(c, action, im); err != nil {
		if method == "copy-image" && !ownerOrAdmin(c, im) {
			return errs.E(errs.NotFound, "No image found with ID %s", im.ID)
		}
		return err
	}
	return nil
}

// parseImportStores reads all_stores_must_succeed and the target stores:
// the stores list, all_stores, the X-Image-Meta-Store header or the
// default store.
func (s *Service) parseImportStores(job *importJob, body map[string]any, header string) error {
	all, _ := body["all_stores"].(bool)
	job.mustAll = true
	if v, ok := body["all_stores_must_succeed"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return errs.E(errs.Invalid, "all_stores_must_succeed must be a boolean")
		}
		job.mustAll = b
	}
	rawStores, hasStores := body["stores"]
	if all && (hasStores || header != "") {
		return errs.E(errs.Invalid, "All_stores parameter can't be used with x-image-meta-store header or stores parameter")
	}
	switch {
	case hasStores && rawStores != nil:
		arr, ok := rawStores.([]any)
		if !ok {
			return errs.E(errs.Invalid, "stores must be a list of store identifiers")
		}
		for _, v := range arr {
			id, ok := v.(string)
			if !ok {
				return errs.E(errs.Invalid, "stores must be a list of store identifiers")
			}
			if _, ok := s.stores.Get(id); !ok {
				return errs.E(errs.Conflict, "Store for identifier %s not found", id)
			}
			if !slices.Contains(job.stores, id) {
				job.stores = append(job.stores, id)
			}
		}
	case all:
		for _, st := range s.stores.All() {
			if !st.ReadOnly && !(job.method == "copy-image" && job.image.HasStore(st.ID)) {
				job.stores = append(job.stores, st.ID)
			}
		}
	case header != "":
		if _, ok := s.stores.Get(header); !ok {
			return errs.E(errs.Conflict, "Store for identifier %s not found", header)
		}
		job.stores = []string{header}
	default:
		job.stores = []string{s.stores.Default().ID}
	}
	if len(job.stores) == 0 {
		return errs.E(errs.Invalid, "No store is left to import the image into.")
	}
	return nil
}

// checkImportable checks the image's state for the method: no import
// running, data staged for glance-direct, a queued image and an http(s)
// URI for web-download, an active image for copy-image, which may not
// target a store that holds the image already or cannot be written.
func (s *Service) checkImportable(job *importJob) error {
	im := job.image
	if im.Props[propTask] != "" {
		return errs.E(errs.Conflict, "Image has an import task %s in progress.", im.Props[propTask])
	}
	switch job.method {
	case "glance-direct":
		switch {
		case im.Status == StatusUploading && im.Size != nil:
		case im.Status == StatusUploading, im.Status == StatusQueued:
			return errs.E(errs.Conflict, "Image needs to be staged before 'glance-direct' method can be used")
		default:
			return errs.E(errs.Conflict, "Image with status %s cannot be target for import", im.Status)
		}
	case "web-download":
		if im.Status != StatusQueued {
			return errs.E(errs.Conflict, "Image with status %s cannot be target for import", im.Status)
		}
		if u, err := url.Parse(job.uri); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errs.E(errs.Invalid, "URI for web-download does not pass filtering: %s", job.uri)
		}
	case "copy-image":
		if im.Status != StatusActive {
			return errs.E(errs.Conflict, "Only images with status active can be targeted for copying")
		}
		for _, id := range job.stores {
			if im.HasStore(id) {
				return errs.E(errs.Invalid, "Image is already present at store '%s'", id)
			}
		}
		// Refused up front, as an upload into such a store is (410),
		// rather than accepted and failed in the background.
		for _, id := range job.stores {
			if st, _ := s.stores.Get(id); st.ReadOnly {
				return errReadOnlyStore
			}
		}
	}
	if job.method != "copy-image" && (im.DiskFormat == nil || im.ContainerFormat == nil) {
		return errs.E(errs.Invalid, "Properties disk_format, container_format must be set prior to saving data.")
	}
	return nil
}

// runImport does the work of one import and leaves the image in a state
// from which the user can go on: active with the copies that succeeded, or
// back to uploading/queued (staged data kept) when nothing may be kept.
// Cut off (its node stopping, its lease lost), it returns at once and
// leaves the image importing for the task's next attempt to resume.
func (s *Service) runImport(ctx context.Context, job *importJob) error {
	log := s.deps.Logger.With("image", job.image.ID, "task", job.taskID, "method", job.method)
	id := job.image.ID
	staging := s.stores.Staging()
	if job.image.Size != nil && job.method != "web-download" {
		job.task.SetTotal(*job.image.Size * int64(len(job.stores)))
	}
	var src func(ctx context.Context) (io.ReadCloser, error)
	switch job.method {
	case "web-download":
		if err := s.download2Staging(ctx, job); err != nil {
			if ctx.Err() != nil {
				return err
			}
			log.Warn("web-download failed", "err", err)
			return s.failImport(ctx, job, append(job.failed, job.stores...), StatusQueued, "Task failed: "+errs.Message(err))
		}
		fallthrough
	case "glance-direct":
		src = func(ctx context.Context) (io.ReadCloser, error) { return staging.Get(ctx, id, 0, -1) }
	case "copy-image":
		src = func(ctx context.Context) (io.ReadCloser, error) {
			im, err := loadImage(ctx, s.deps.DB, id)
			if err != nil {
				return nil, err
			}
			return s.openFirst(ctx, im, 0, -1)
		}
	}
	done, failed := job.done, job.failed
	var copied int64
	for i, sid := range job.stores {
		st, _ := s.stores.Get(sid)
		n, err := s.copyInto(ctx, job, st, src)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			log.Warn("import into store failed", "store", sid, "err", err)
			failed = append(failed, sid)
			if job.mustAll {
				failed = append(failed, job.stores[i+1:]...)
				break
			}
		} else {
			done = append(done, sid)
			copied = n
		}
		s.setImportProps(ctx, id, job.stores[i+1:], failed)
	}
	if len(failed) > 0 && (job.mustAll || len(done) == 0) {
		// Roll back the copies this import made; the image goes back to
		// where the user can retry (Glance wedges it in importing).
		for _, sid := range done {
			s.removeCopy(context.WithoutCancel(ctx), id, sid)
		}
		back := StatusUploading // web-download too: the download is staged, glance-direct can import it
		if job.method == "copy-image" {
			back = StatusActive
		}
		return s.failImport(ctx, job, failed, back, fmt.Sprintf("Import failed for stores: %s", strings.Join(failed, ",")))
	}
	return s.succeedImport(ctx, job, failed, copied)
}

// succeedImport ends an import that kept its copies: the staged data goes,
// the lock is released and the task records its result.
func (s *Service) succeedImport(ctx context.Context, job *importJob, failed []string, copied int64) error {
	ctx = context.WithoutCancel(ctx)
	id := job.image.ID
	result, _ := json.Marshal(map[string]string{"image_id": id})
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if err := setProps(ctx, tx, id, map[string]*string{propTask: nil, propImporting: strp(""), propFailed: strp(strings.Join(failed, ",")),
			propStageHost: nil}); err != nil {
			return err
		}
		if err := succeedTask(ctx, tx, job.taskID, string(result), fmt.Sprintf("Copied %d MiB", copied>>20)); err != nil {
			return err
		}
		return job.task.Complete(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("finishing import of %s: %w", id, err)
	}
	if job.method != "copy-image" {
		_ = s.stores.Staging().Delete(ctx, id)
	}
	return nil
}

// copyInto streams the source into one store and records the copy. The
// first copy of an import activates the image with the pass's hashes;
// later copies must hash to the same values.
func (s *Service) copyInto(ctx context.Context, job *importJob, st *store.Store, src func(context.Context) (io.ReadCloser, error)) (int64, error) {
	id := job.image.ID
	// What an earlier attempt's write left (its node died) goes first.
	if err := st.Recover(ctx, id); err != nil {
		return 0, err
	}
	rc, err := src(ctx)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	data := job.task.Reader(rc)
	limit, _, _, err := s.limits(ctx, job.image.Owner)
	if err != nil {
		return 0, err
	}
	res, err := st.Put(ctx, id, data, limit, s.cfg.Image.HashingAlgorithm)
	if err != nil {
		return 0, err
	}
	dctx := context.WithoutCancel(ctx)
	err = s.deps.DB.InTx(dctx, func(tx *db.Tx) error {
		cur, err := loadImage(dctx, tx, id)
		if err != nil {
			return err
		}
		if cur.Checksum != nil && cur.Status == StatusActive {
			if *cur.Checksum != res.MD5 || deref(cur.HashValue) != res.Hash {
				return fmt.Errorf("copy into %s does not match the image's checksum", st.ID)
			}
		} else if _, err := activate(dctx, tx, id, "", imageData{Size: res.Size, MD5: res.MD5, Hash: res.Hash,
			VirtualSize: imageformat.VirtualSize(deref(cur.DiskFormat), res.Head, res.Size), Algo: s.cfg.Image.HashingAlgorithm}); err != nil {
			return err
		}
		return addLocation(dctx, tx, id, st.ID, objectURL(st, id))
	})
	if err != nil {
		_ = st.Delete(dctx, id)
		return 0, err
	}
	return res.Size, nil
}

func (s *Service) setImportProps(ctx context.Context, id string, pending, failed []string) {
	_ = setProps(context.WithoutCancel(ctx), s.deps.DB, id, map[string]*string{
		propImporting: strp(strings.Join(pending, ",")), propFailed: strp(strings.Join(failed, ","))})
}

// failImport ends a failed import: the lock is released, the failed stores
// recorded, the image put back into status back (active when it has
// copies; queued when back is uploading but nothing is staged).
func (s *Service) failImport(ctx context.Context, job *importJob, failed []string, back, msg string) error {
	ctx = context.WithoutCancel(ctx)
	id := job.image.ID
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		cur, err := loadImage(ctx, tx, id)
		if err != nil {
			return err
		}
		if back == StatusUploading {
			if _, err := s.stores.Staging().Size(ctx, id); err != nil {
				back = StatusQueued
			}
		}
		status, size := back, cur.Size
		if len(cur.Locations) > 0 {
			status = StatusActive
		}
		if status == StatusQueued {
			size = nil
		}
		if err := settleFailedImport(ctx, tx, id, status, size); err != nil {
			return err
		}
		props := map[string]*string{propTask: nil, propImporting: strp(""), propFailed: strp(strings.Join(failed, ","))}
		if status != StatusUploading {
			props[propStageHost] = nil // nothing staged any more
		}
		if err := setProps(ctx, tx, id, props); err != nil {
			return err
		}
		if err := failTask(ctx, tx, job.taskID, msg); err != nil {
			return err
		}
		return job.task.Fail(ctx, tx, errors.New(msg))
	})
	if errs.Is(err, errs.NotFound) {
		return nil // the image is gone
	}
	if err != nil {
		return fmt.Errorf("recording failed import of %s: %w", id, err)
	}
	return nil
}
