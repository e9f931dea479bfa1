package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
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
)

// Import bookkeeping properties, shown as top-level image keys.
const (
	propTask      = "os_glance_import_task"
	propImporting = "os_glance_importing_to_stores"
	propFailed    = "os_glance_failed_import"
)

type importJob struct {
	taskID     string
	image      *Image
	method     string
	uri        string
	stores     []string
	mustAll    bool
	caller     *auth.Caller
	requestID  string
	importReq  map[string]any
	sourceSize int64
}

func (s *Service) importImage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c := caller(r)
	im, err := s.getVisible(ctx, c, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body, err := decodeObject(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	job, err := s.validateImport(c, im, body, r.Header.Get("X-Image-Meta-Store"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	job.requestID = api.RequestID(ctx)
	if err := s.startImport(ctx, job); err != nil {
		s.fail(w, r, err)
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.runImport(s.bgCtx, job)
	}()
	writeEmpty(w, http.StatusAccepted)
}

func (s *Service) validateImport(c *auth.Caller, im *Image, body map[string]any, header string) (*importJob, error) {
	job := &importJob{taskID: uuid.NewString(), image: im, caller: c, importReq: body}
	meth, _ := body["method"].(map[string]any)
	job.method, _ = meth["name"].(string)
	switch job.method {
	case "glance-direct", "web-download", "copy-image":
	default:
		return nil, errs.E(errs.Invalid, "Unknown import method name '%s'.", job.method)
	}
	if !s.methodEnabled(job.method) {
		return nil, errs.E(errs.Invalid, "Import method %s is not enabled.", job.method)
	}
	action := "import_image"
	if job.method == "copy-image" {
		action = "copy_image"
	}
	if job.method != "copy-image" || !c.IsAdmin() {
		if err := enforce(c, action, im); err != nil {
			if job.method == "copy-image" && !ownerOrAdmin(c, im) {
				return nil, errs.E(errs.NotFound, "No image found with ID %s", im.ID)
			}
			return nil, err
		}
	}
	all, _ := body["all_stores"].(bool)
	if v, ok := body["all_stores_must_succeed"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return nil, errs.E(errs.Invalid, "all_stores_must_succeed must be a boolean")
		}
		job.mustAll = b
	} else {
		job.mustAll = true
	}
	rawStores, hasStores := body["stores"]
	if all && (hasStores || header != "") {
		return nil, errs.E(errs.Invalid, "All_stores parameter can't be used with x-image-meta-store header or stores parameter")
	}
	switch {
	case hasStores && rawStores != nil:
		arr, ok := rawStores.([]any)
		if !ok {
			return nil, errs.E(errs.Invalid, "stores must be a list of store identifiers")
		}
		for _, v := range arr {
			id, ok := v.(string)
			if !ok {
				return nil, errs.E(errs.Invalid, "stores must be a list of store identifiers")
			}
			if _, ok := s.stores.Get(id); !ok {
				return nil, errs.E(errs.Conflict, "Store for identifier %s not found", id)
			}
			if !slices.Contains(job.stores, id) {
				job.stores = append(job.stores, id)
			}
		}
	case all:
		for _, st := range s.stores.All() {
			if !st.ReadOnly && !(job.method == "copy-image" && im.HasStore(st.ID)) {
				job.stores = append(job.stores, st.ID)
			}
		}
	case header != "":
		if _, ok := s.stores.Get(header); !ok {
			return nil, errs.E(errs.Conflict, "Store for identifier %s not found", header)
		}
		job.stores = []string{header}
	default:
		job.stores = []string{s.stores.Default().ID}
	}
	if len(job.stores) == 0 {
		return nil, errs.E(errs.Invalid, "No store is left to import the image into.")
	}
	if im.Props[propTask] != "" {
		return nil, errs.E(errs.Conflict, "Image has an import task %s in progress.", im.Props[propTask])
	}
	switch job.method {
	case "glance-direct":
		switch im.Status {
		case StatusUploading:
			if im.Size == nil {
				return nil, errs.E(errs.Conflict, "Image needs to be staged before 'glance-direct' method can be used")
			}
		case StatusQueued:
			return nil, errs.E(errs.Conflict, "Image needs to be staged before 'glance-direct' method can be used")
		default:
			return nil, errs.E(errs.Conflict, "Image with status %s cannot be target for import", im.Status)
		}
	case "web-download":
		if im.Status != StatusQueued {
			return nil, errs.E(errs.Conflict, "Image with status %s cannot be target for import", im.Status)
		}
		job.uri, _ = meth["uri"].(string)
		if u, err := url.Parse(job.uri); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errs.E(errs.Invalid, "URI for web-download does not pass filtering: %s", job.uri)
		}
	case "copy-image":
		if im.Status != StatusActive {
			return nil, errs.E(errs.Conflict, "Only images with status active can be targeted for copying")
		}
		for _, id := range job.stores {
			if im.HasStore(id) {
				return nil, errs.E(errs.Invalid, "Image is already present at store '%s'", id)
			}
		}
	}
	if job.method != "copy-image" && (im.DiskFormat == nil || im.ContainerFormat == nil) {
		return nil, errs.E(errs.Invalid, "Properties disk_format, container_format must be set prior to saving data.")
	}
	return job, nil
}

// filterURI allows only http(s) URLs to the configured hosts.
func (s *Service) filterURI(uri string) error {
	bad := errs.E(errs.Invalid, "URI for web-download does not pass filtering: %s", uri)
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return bad
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	host := strings.ToLower(u.Hostname())
	for _, a := range s.cfg.Image.AllowedImportHosts {
		a = strings.ToLower(strings.TrimSpace(a))
		h, p, err := net.SplitHostPort(a)
		if err != nil {
			h, p = strings.Trim(a, "[]"), ""
		}
		if h == host && (p == port || p == "" && (port == "80" || port == "443")) {
			return nil
		}
	}
	return bad
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
		res, err := tx.ExecContext(ctx, `UPDATE images SET status = ?, updated_at = ? WHERE id = ? AND status = ?
AND NOT EXISTS (SELECT 1 FROM image_properties WHERE image_id = ? AND name = ?)`, newStatus, now, im.ID, im.Status, im.ID, propTask)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.E(errs.Conflict, "Image %s changed while the import was being requested; try again.", im.ID)
		}
		if err := setProps(ctx, tx, im.ID, map[string]*string{propTask: strp(job.taskID),
			propImporting: strp(strings.Join(job.stores, ",")), propFailed: strp("")}); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO image_tasks (id, image_id, type, status, owner, user_id, request_id, input,
message, created_at, updated_at, expires_at, node) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`, job.taskID, im.ID, "api_image_import",
			"processing", job.caller.ProjectID, job.caller.UserID, job.requestID, string(input), "", now, now,
			db.Timestamp{Time: now.Time.Add(48 * time.Hour)}, s.node())
		return err
	})
}

// runImport does the work of one import and leaves the image in a state
// from which the user can go on: active with the copies that succeeded, or
// back to uploading/queued (staged data kept) when nothing may be kept.
func (s *Service) runImport(ctx context.Context, job *importJob) {
	log := s.deps.Logger.With("image", job.image.ID, "task", job.taskID, "method", job.method)
	stop := s.taskAlive(job.taskID)
	defer stop()
	id := job.image.ID
	staging := s.stores.Staging()
	var src func(ctx context.Context) (io.ReadCloser, error)
	switch job.method {
	case "web-download":
		if err := s.download2Staging(ctx, job); err != nil {
			log.Warn("web-download failed", "err", err)
			s.failImport(ctx, job, job.stores, StatusQueued, "Task failed: "+errs.Message(err))
			return
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
	var done, failed []string
	var copied int64
	for i, sid := range job.stores {
		st, _ := s.stores.Get(sid)
		n, err := s.copyInto(ctx, job, st, src)
		if err != nil {
			log.Warn("import into store failed", "store", sid, "err", err)
			failed = append(failed, sid)
			if ctx.Err() != nil || job.mustAll {
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
		back := StatusUploading
		switch job.method {
		case "copy-image":
			back = StatusActive
		case "web-download":
			back = StatusUploading // the download is staged and can be imported with glance-direct
		}
		s.failImport(context.WithoutCancel(ctx), job, failed, back, fmt.Sprintf("Import failed for stores: %s", strings.Join(failed, ",")))
		return
	}
	dctx := context.WithoutCancel(ctx)
	if job.method != "copy-image" {
		_ = staging.Delete(dctx, id)
	}
	result, _ := json.Marshal(map[string]string{"image_id": id})
	err := s.deps.DB.InTx(dctx, func(tx *db.Tx) error {
		if err := setProps(dctx, tx, id, map[string]*string{propTask: nil, propImporting: strp(""), propFailed: strp(strings.Join(failed, ","))}); err != nil {
			return err
		}
		_, err := tx.ExecContext(dctx, "UPDATE image_tasks SET status = 'success', result = ?, message = ?, updated_at = ? WHERE id = ?",
			string(result), fmt.Sprintf("Copied %d MiB", copied>>20), db.Now(), job.taskID)
		return err
	})
	if err != nil {
		log.Error("finishing import", "err", err)
	}
}

// copyInto streams the source into one store and records the copy. The
// first copy of an import activates the image with the pass's hashes;
// later copies must hash to the same values.
func (s *Service) copyInto(ctx context.Context, job *importJob, st *store.Store, src func(context.Context) (io.ReadCloser, error)) (int64, error) {
	id := job.image.ID
	if err := s.addPending(ctx, s.deps.DB, id, st.ID, id); err != nil {
		return 0, err
	}
	defer func() { _ = s.dropPending(context.WithoutCancel(ctx), s.deps.DB, st.ID, id) }()
	rc, err := src(ctx)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	limit, _, _, err := s.limits(ctx, job.image.Owner)
	if err != nil {
		return 0, err
	}
	stop := s.keepAlive(st.ID, id)
	res, err := st.Put(ctx, id, rc, limit, s.cfg.Image.HashingAlgorithm)
	stop()
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
		} else {
			vsize := virtualSize(deref(cur.DiskFormat), res.Head, res.Size)
			if _, err := tx.ExecContext(dctx, `UPDATE images SET status = ?, size = ?, virtual_size = ?, checksum = ?,
os_hash_algo = ?, os_hash_value = ?, updated_at = ? WHERE id = ?`, StatusActive, res.Size, vsize, res.MD5,
				s.cfg.Image.HashingAlgorithm, res.Hash, db.Now(), id); err != nil {
				return err
			}
		}
		if err := addLocation(dctx, tx, id, st, id); err != nil {
			return err
		}
		return s.dropPending(dctx, tx, st.ID, id)
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
// recorded, the image put back into status back.
func (s *Service) failImport(ctx context.Context, job *importJob, failed []string, back, msg string) {
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
		status := back
		if len(cur.Locations) > 0 {
			status = StatusActive
		}
		var size any = cur.Size
		if status == StatusQueued {
			size = nil
		}
		if _, err := tx.ExecContext(ctx, "UPDATE images SET status = ?, size = ?, updated_at = ? WHERE id = ?", status, size, db.Now(), id); err != nil {
			return err
		}
		if status != StatusActive {
			if _, err := tx.ExecContext(ctx, "UPDATE images SET checksum = NULL, os_hash_algo = NULL, os_hash_value = NULL, virtual_size = NULL WHERE id = ?", id); err != nil {
				return err
			}
		}
		if err := setProps(ctx, tx, id, map[string]*string{propTask: nil, propImporting: strp(""), propFailed: strp(strings.Join(failed, ","))}); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE image_tasks SET status = 'failure', message = ?, updated_at = ? WHERE id = ?", msg, db.Now(), job.taskID)
		return err
	})
	if err != nil && !errs.Is(err, errs.NotFound) {
		s.deps.Logger.Error("recording failed import", "image", id, "err", err)
	}
}

// abandonImport is failImport for an import whose node died.
func (s *Service) abandonImport(ctx context.Context, imageID, taskID, why string) {
	im, err := loadImage(ctx, s.deps.DB, imageID)
	if err != nil || im.Props[propTask] != taskID {
		// the image is gone or no longer locked by this task
		_, _ = s.deps.DB.ExecContext(ctx, "UPDATE image_tasks SET status = 'failure', message = ?, updated_at = ? WHERE id = ?", why, db.Now(), taskID)
		return
	}
	pending := strings.Split(im.Props[propImporting], ",")
	job := &importJob{image: im, taskID: taskID}
	s.failImport(ctx, job, slices.DeleteFunc(pending, func(s string) bool { return s == "" }), StatusUploading, why)
}

// download2Staging fetches a web-download URI into the staging store.
func (s *Service) download2Staging(ctx context.Context, job *importJob) error {
	id := job.image.ID
	staging := s.stores.Staging()
	// The host filter runs in the task, like any other fetch failure: the
	// request is accepted (202) and the import fails with
	// os_glance_failed_import, which is the upstream contract tempest checks.
	if err := s.filterURI(job.uri); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, job.uri, nil)
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "bad URI")
	}
	resp, err := s.HTTPClient.Do(req)
	if err != nil {
		return errs.Wrap(errs.Unavailable, err, "The URI could not be fetched.")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errs.E(errs.Unavailable, "The URI answered %s.", resp.Status)
	}
	limit, _, _, err := s.limits(ctx, job.image.Owner)
	if err != nil {
		return err
	}
	if err := s.addPending(ctx, s.deps.DB, id, staging.ID, id); err != nil {
		return err
	}
	stop := s.keepAlive(staging.ID, id)
	res, err := staging.Put(ctx, id, resp.Body, limit, s.cfg.Image.HashingAlgorithm)
	stop()
	dctx := context.WithoutCancel(ctx)
	if err == nil {
		_, err = s.deps.DB.ExecContext(dctx, "UPDATE images SET size = ?, updated_at = ? WHERE id = ?", res.Size, db.Now(), id)
	}
	_ = s.dropPending(dctx, s.deps.DB, staging.ID, id)
	return err
}

// removeCopy deletes one store copy: the location goes first (recorded as
// pending so a crash cannot orphan the object), then the object.
func (s *Service) removeCopy(ctx context.Context, id, storeID string) {
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if err := s.addPending(ctx, tx, id, storeID, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM image_locations WHERE image_id = ? AND store = ?", id, storeID)
		return err
	})
	if err != nil {
		s.deps.Logger.Error("removing image copy", "image", id, "store", storeID, "err", err)
		return
	}
	if st, ok := s.stores.Get(storeID); ok {
		if err := st.Delete(ctx, id); err != nil && !errs.Is(err, errs.NotFound) {
			s.deps.Logger.Warn("deleting image copy", "image", id, "store", storeID, "err", err)
			return
		}
	}
	_ = s.dropPending(ctx, s.deps.DB, storeID, id)
}

func (s *Service) deleteFromStore(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c := caller(r)
	id, sid := r.PathValue("id"), r.PathValue("store")
	im, err := s.getVisible(ctx, c, id)
	if errs.Is(err, errs.NotFound) || err == nil && !ownerOrAdmin(c, im) {
		err = errs.E(errs.NotFound, "Failed to find image %s", id)
	}
	if err == nil {
		err = enforce(c, "delete_image_location", im)
	}
	if err == nil {
		if _, ok := s.stores.Get(sid); !ok {
			err = errs.E(errs.Conflict, "The selected store %s is not available on this node.", sid)
		}
	}
	if err == nil && !im.HasStore(sid) {
		err = errs.E(errs.NotFound, "Image %s is not stored in store %s.", id, sid)
	}
	if err == nil && len(im.Locations) == 1 {
		err = errs.E(errs.Forbidden, "Cannot delete image data from the only store containing it. Consider deleting the image instead.")
	}
	if err == nil && im.Status != StatusActive {
		err = errs.E(errs.Conflict, "It's not allowed to remove image data from store if image status is not 'active'")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.removeCopy(context.WithoutCancel(ctx), id, sid)
	_, _ = s.deps.DB.ExecContext(ctx, "UPDATE images SET updated_at = ? WHERE id = ?", db.Now(), id)
	writeEmpty(w, http.StatusNoContent)
}

func (s *Service) taskView(ctx context.Context, where string, args ...any) ([]object, error) {
	rows, err := s.deps.DB.QueryContext(ctx, `SELECT id, image_id, type, status, owner, user_id, request_id, input, result,
message, created_at, updated_at, expires_at FROM image_tasks WHERE `+where+" ORDER BY created_at DESC", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []object{}
	for rows.Next() {
		var id, imageID, typ, status, owner, user, reqID, input, message string
		var result *string
		var created, updated, expires db.Timestamp
		if err := rows.Scan(&id, &imageID, &typ, &status, &owner, &user, &reqID, &input, &result, &message, &created, &updated, &expires); err != nil {
			return nil, err
		}
		var in, res any
		_ = json.Unmarshal([]byte(input), &in)
		if result != nil {
			_ = json.Unmarshal([]byte(*result), &res)
		}
		var exp any
		if !expires.IsZero() {
			exp = isoTime(expires)
		}
		out = append(out, object{{"id", id}, {"type", typ}, {"status", status}, {"owner", owner},
			{"expires_at", exp}, {"created_at", isoTime(created)}, {"updated_at", isoTime(updated)},
			{"deleted_at", nil}, {"deleted", false}, {"image_id", imageID}, {"request_id", reqID},
			{"user_id", user}, {"input", in}, {"result", res}, {"message", message},
			{"self", "/v2/tasks/" + id}, {"schema", "/v2/schemas/task"}})
	}
	return out, rows.Err()
}

func (s *Service) imageTasks(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	im, err := s.getVisible(r.Context(), c, r.PathValue("id"))
	if err == nil {
		err = readable(c, "get_tasks")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	tasks, err := s.taskView(r.Context(), "image_id = ?", im.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, object{{"tasks", tasks}})
}

func (s *Service) showTask(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	tasks, err := s.taskView(r.Context(), "id = ?", r.PathValue("id"))
	if err == nil && (len(tasks) == 0 || !c.IsAdmin() && tasks[0][3].v != c.ProjectID) {
		err = errs.E(errs.NotFound, "Task with the given ID %s not found", r.PathValue("id"))
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, tasks[0])
}

// taskAlive refreshes a running task's updated_at so other nodes do not
// take it for a dead node's.
func (s *Service) taskAlive(taskID string) (stop func()) {
	return s.heartbeat("UPDATE image_tasks SET updated_at = ? WHERE id = ? AND status = 'processing'", taskID)
}
