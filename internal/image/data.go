package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
)

// checkOctetStream refuses bodies that are not raw image data.
func checkOctetStream(r *http.Request) error {
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	ct = strings.TrimSpace(strings.ToLower(ct))
	if ct != "" && ct != "application/octet-stream" {
		return errs.E(errs.UnsupportedMedia, "The request media type %s is not supported by this server.\n", ct)
	}
	return nil
}

// limits returns the byte limit for a new object of the image's owner and
// whether the project quota (not the size cap) is what binds it.
func (s *Service) limits(ctx context.Context, owner string) (limit int64, quota bool, remaining int64, err error) {
	limit = s.cfg.Image.ImageSizeCap
	if q := s.cfg.Image.UserStorageQuota; q > 0 {
		used, err := s.projectUsage(ctx, owner)
		if err != nil {
			return 0, false, 0, err
		}
		remaining = q - used
		if remaining <= 0 {
			// (a limit of 0 would mean "unlimited" to the store wrapper)
			return 0, true, remaining, tooLargeErr(true, 0, remaining)
		}
		if remaining < limit {
			return remaining, true, remaining, nil
		}
	}
	return limit, false, remaining, nil
}

// projectUsage is the bytes a project stores, counting every copy (as
// Glance's user_storage_quota does).
func (s *Service) projectUsage(ctx context.Context, owner string) (int64, error) {
	var used int64
	err := s.deps.DB.QueryRowContext(ctx, `SELECT COALESCE(SUM(COALESCE(i.size, 0)), 0) FROM images i
JOIN image_locations l ON l.image_id = i.id WHERE i.owner = ?`, owner).Scan(&used)
	return used, err
}

func tooLargeErr(quota bool, size, remaining int64) error {
	if quota {
		return errs.E(errs.TooLarge, "Image exceeds the storage quota: The size of the data %d will exceed the limit. %d bytes remaining.", size, remaining)
	}
	return errs.E(errs.TooLarge, "The incoming image is too large: The provided image is too large.")
}

// objectURL is the location URL Glance shows for key in st.
func objectURL(st *store.Store, key string) string {
	if u, err := st.Location(key); err == nil {
		return u
	}
	if st.Type == "file" {
		if dir, ok := st.Properties["data_dir"].(string); ok && dir != "" {
			return "file://" + strings.TrimSuffix(dir, "/") + "/" + key
		}
	}
	return st.Type + "://" + st.ID + "/" + key
}

func (s *Service) addPending(ctx context.Context, q db.Querier, imageID, storeID, key string) error {
	_, err := q.ExecContext(ctx, `INSERT INTO image_pending_objects (image_id, store, object_key, node, heartbeat_at)
VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING`, imageID, storeID, key, s.node(), db.Now())
	return err
}

// node names this image API process among the nodes sharing the database.
func (s *Service) node() string { return s.cfg.Image.PublicURL }

// StaleAfter is how long a pending object may go without a heartbeat before
// any node treats it as left behind by a dead process.
const StaleAfter = 2 * time.Minute

// keepAlive refreshes the heartbeat of a pending object until stop is
// called, so other nodes leave the write alone.
func (s *Service) keepAlive(storeID, key string) (stop func()) {
	return s.heartbeat("UPDATE image_pending_objects SET heartbeat_at = ? WHERE store = ? AND object_key = ?", storeID, key)
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

var errDeleted = errors.New("image deleted during upload")

func (s *Service) upload(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c := caller(r)
	fail := func(err error) {
		w.Header().Set("Connection", "close")
		s.fail(w, r, err)
	}
	im, err := s.visibleFor(ctx, c, r, "upload_image")
	if err != nil {
		fail(err)
		return
	}
	if err := checkOctetStream(r); err != nil {
		fail(err)
		return
	}
	st := s.stores.Default()
	if id := r.Header.Get("X-Image-Meta-Store"); id != "" {
		var ok bool
		if st, ok = s.stores.Get(id); !ok {
			fail(errs.E(errs.Invalid, "Store for identifier %s not found", id))
			return
		}
	}
	if im.DiskFormat == nil || im.ContainerFormat == nil {
		fail(errs.E(errs.Invalid, "Properties disk_format, container_format must be set prior to saving data."))
		return
	}
	if im.Status != StatusQueued {
		fail(errs.E(errs.Conflict, "Image status transition from %s to saving is not allowed", im.Status))
		return
	}
	if st.ReadOnly {
		fail(errs.E(errs.Gone, "Error in store configuration. Adding images to store is disabled."))
		return
	}
	res, err := s.putBody(ctx, w, r, im, st, StatusSaving)
	if err != nil {
		fail(err)
		return
	}
	if err := s.finishUpload(ctx, im, st, res, StatusSaving); err != nil {
		if errors.Is(err, errDeleted) {
			fail(s.deletedDuringUpload(ctx, im, st))
			return
		}
		s.requeue(ctx, im, st, StatusSaving)
		fail(s.uploadErr(err, false, 0))
		return
	}
	writeEmpty(w, http.StatusNoContent)
}

// putBody streams the request body into st as im's data, bounded by the
// owner's limits, with im moved from queued to during while it runs. If the
// Put fails (the wrapper has deleted the partial object) the image goes
// back to queued and the error is Glance's answer.
func (s *Service) putBody(ctx context.Context, w http.ResponseWriter, r *http.Request, im *Image, st *store.Store, during string) (store.PutResult, error) {
	limit, quota, remaining, err := s.limits(ctx, im.Owner)
	if err != nil {
		return store.PutResult{}, err
	}
	if r.ContentLength > limit {
		return store.PutResult{}, tooLargeErr(quota, r.ContentLength, remaining)
	}
	if err := s.transition(ctx, im.ID, StatusQueued, during, st.ID, im.ID); err != nil {
		return store.PutResult{}, err
	}
	stop := s.keepAlive(st.ID, im.ID)
	res, err := st.Put(ctx, im.ID, s.bodyReader(w, r), limit, s.cfg.Image.HashingAlgorithm)
	stop()
	if err != nil {
		s.requeue(ctx, im, st, during)
		return res, s.uploadErr(err, quota, remaining)
	}
	return res, nil
}

// requeue hands an image whose data did not land back to queued and
// forgets its pending object.
func (s *Service) requeue(ctx context.Context, im *Image, st *store.Store, from string) {
	dctx := context.WithoutCancel(ctx)
	_, _ = s.deps.DB.ExecContext(dctx, "UPDATE images SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
		StatusQueued, db.Now(), im.ID, from)
	_ = s.dropPending(dctx, s.deps.DB, st.ID, im.ID)
}

// deletedDuringUpload removes the data of an image deleted while it was
// being written and returns Glance's 410.
func (s *Service) deletedDuringUpload(ctx context.Context, im *Image, st *store.Store) error {
	dctx := context.WithoutCancel(ctx)
	_ = st.Delete(dctx, im.ID)
	_ = s.dropPending(dctx, s.deps.DB, st.ID, im.ID)
	return errs.E(errs.Gone, "Image %s could not be found after upload. The image may have been deleted during the upload.", im.ID)
}

// uploadErr turns a failed Put into Glance's answer.
func (s *Service) uploadErr(err error, quota bool, remaining int64) error {
	switch {
	case errors.Is(err, store.ErrTooLarge):
		return tooLargeErr(quota, 0, remaining)
	case errs.KindOf(err) != errs.Other:
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, io.ErrUnexpectedEOF), isClientErr(err):
		return errs.Wrap(errs.Invalid, err, "Error reading the image data from the request.")
	}
	return err
}

// isClientErr reports errors that come from reading the request body.
func isClientErr(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe) || strings.Contains(err.Error(), "http: ") || strings.Contains(err.Error(), "connection reset")
}

// transition moves an image from one status to another, recording the
// object about to be written, or 409 like Glance.
func (s *Service) transition(ctx context.Context, id, from, to, storeID, key string) error {
	return s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE images SET status = ?, updated_at = ? WHERE id = ? AND status = ?", to, db.Now(), id, from)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			cur, err := loadImage(ctx, tx, id)
			if err != nil {
				return err
			}
			return errs.E(errs.Conflict, "Image status transition from %s to %s is not allowed", cur.Status, to)
		}
		if storeID != "" {
			return s.addPending(ctx, tx, id, storeID, key)
		}
		return nil
	})
}

// finishUpload records a written object: the image becomes active with the
// sizes and hashes of the one pass, and the store becomes a location.
func (s *Service) finishUpload(ctx context.Context, im *Image, st *store.Store, res store.PutResult, from string) error {
	vsize := virtualSize(deref(im.DiskFormat), res.Head, res.Size)
	algo := s.cfg.Image.HashingAlgorithm
	ctx = context.WithoutCancel(ctx)
	return s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		r, err := tx.ExecContext(ctx, `UPDATE images SET status = ?, size = ?, virtual_size = ?, checksum = ?, os_hash_algo = ?,
os_hash_value = ?, updated_at = ? WHERE id = ? AND status = ?`, StatusActive, res.Size, vsize, res.MD5, algo, res.Hash, db.Now(), im.ID, from)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return errDeleted
		}
		if err := addLocation(ctx, tx, im.ID, st, im.ID); err != nil {
			return err
		}
		return s.dropPending(ctx, tx, st.ID, im.ID)
	})
}

func addLocation(ctx context.Context, tx *db.Tx, imageID string, st *store.Store, key string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO image_locations (image_id, store, url, position)
VALUES (?, ?, ?, (SELECT COALESCE(MAX(position), 0) + 1 FROM image_locations WHERE image_id = ?))`,
		imageID, st.ID, objectURL(st, key), imageID)
	return err
}

var rangeRE = regexp.MustCompile(`^bytes=(\d*)-(\d*)$`)
var contentRangeRE = regexp.MustCompile(`^bytes (\d+)-(\d+)/(\d+|\*)$`)

// parseRange returns offset and length for a single range of size bytes.
func parseRange(r *http.Request, size int64) (off, n int64, ranged bool, err error) {
	h := strings.TrimSpace(r.Header.Get("Range"))
	if h == "" {
		cr := strings.TrimSpace(r.Header.Get("Content-Range"))
		if cr == "" {
			return 0, size, false, nil
		}
		m := contentRangeRE.FindStringSubmatch(cr)
		if m == nil {
			return 0, 0, false, errs.E(errs.Invalid, "Invalid Content-Range header.")
		}
		h = "bytes=" + m[1] + "-" + m[2]
	}
	if strings.Contains(h, ",") {
		return 0, 0, false, errs.E(errs.Invalid, "Requests with multiple ranges are not supported in Glance. You may make multiple single-range requests instead.")
	}
	m := rangeRE.FindStringSubmatch(h)
	if m == nil || (m[1] == "" && m[2] == "") {
		return 0, 0, false, errs.E(errs.Invalid, "Invalid Range header.")
	}
	unsat := func() error {
		return &errs.Error{Kind: errs.BadRange, Msg: "The Range requested is not available.",
			Detail: fmt.Sprintf("Invalid start position in Range header. Start position MUST be in the inclusive range [0, %d].", max(size-1, 0))}
	}
	if m[1] == "" { // suffix
		k, _ := strconv.ParseInt(m[2], 10, 64)
		if k == 0 || size == 0 {
			return 0, 0, false, unsat()
		}
		k = min(k, size)
		return size - k, k, true, nil
	}
	start, _ := strconv.ParseInt(m[1], 10, 64)
	if start >= size {
		return 0, 0, false, unsat()
	}
	end := size - 1
	if m[2] != "" {
		e, _ := strconv.ParseInt(m[2], 10, 64)
		if e < start {
			return 0, 0, false, errs.E(errs.Invalid, "Invalid Range header.")
		}
		end = min(e, size-1)
	}
	return start, end - start + 1, true, nil
}

func (s *Service) download(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c := caller(r)
	im, err := s.getVisible(ctx, c, r.PathValue("id"))
	if err == nil {
		err = readable(c, "download_image")
	}
	if err == nil && im.Status == StatusDeactivated && !c.IsAdmin() {
		err = errs.E(errs.Forbidden, "The requested image has been deactivated. Image data download is forbidden.")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if len(im.Locations) == 0 || im.Size == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	size := *im.Size
	off, n, ranged, err := parseRange(r, size)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rc, err := s.openFirst(ctx, im, off, n)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	if im.Checksum != nil {
		h.Set("Content-MD5", *im.Checksum)
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	code := http.StatusOK
	if ranged {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, size))
		code = http.StatusPartialContent
	}
	w.WriteHeader(code)
	buf := make([]byte, store.ChunkSize)
	if _, err := io.CopyBuffer(w, rc, buf); err != nil {
		api.LoggerFrom(ctx).Warn("download interrupted", "image", im.ID, "err", err)
	}
}

// openFirst reads from the first store copy that opens.
func (s *Service) openFirst(ctx context.Context, im *Image, off, n int64) (io.ReadCloser, error) {
	var last error
	for _, l := range im.Locations {
		st, ok := s.stores.Get(l.Store)
		if !ok {
			continue
		}
		rc, err := st.Get(ctx, im.ID, off, n)
		if err == nil {
			return rc, nil
		}
		api.LoggerFrom(ctx).Warn("image copy unreadable", "image", im.ID, "store", l.Store, "err", err)
		last = err
	}
	if last == nil || errs.Is(last, errs.NotFound) {
		return nil, errs.E(errs.NotFound, "Image data for %s is not available in any store.", im.ID)
	}
	return nil, errs.Wrap(errs.Unavailable, last, "No store holding the image data is reachable.")
}

func (s *Service) stage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c := caller(r)
	fail := func(err error) {
		w.Header().Set("Connection", "close")
		s.fail(w, r, err)
	}
	im, err := s.visibleFor(ctx, c, r, "upload_image")
	if err == nil {
		err = checkOctetStream(r)
	}
	if err == nil && !s.methodEnabled("glance-direct") {
		err = errs.E(errs.NotFound, "The glance-direct import method is not enabled.")
	}
	if err != nil {
		fail(err)
		return
	}
	if im.Status != StatusQueued {
		fail(errs.E(errs.Conflict, "Image status transition from %s to uploading is not allowed", im.Status))
		return
	}
	st := s.stores.Staging()
	res, err := s.putBody(ctx, w, r, im, st, StatusUploading)
	if err != nil {
		fail(err)
		return
	}
	dctx := context.WithoutCancel(ctx)
	err = s.deps.DB.InTx(dctx, func(tx *db.Tx) error {
		r, err := tx.ExecContext(dctx, "UPDATE images SET size = ?, updated_at = ? WHERE id = ? AND status = ?", res.Size, db.Now(), im.ID, StatusUploading)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return errDeleted
		}
		return s.dropPending(dctx, tx, st.ID, im.ID)
	})
	if err != nil {
		if errors.Is(err, errDeleted) {
			err = s.deletedDuringUpload(ctx, im, st)
		}
		fail(err)
		return
	}
	writeEmpty(w, http.StatusNoContent)
}

func (s *Service) methodEnabled(name string) bool {
	for _, m := range s.cfg.Image.ImportMethods {
		if m == name {
			return true
		}
	}
	return false
}

// ownerOrAdmin: some actions need the owning project, not just visibility.
func ownerOrAdmin(c *auth.Caller, im *Image) bool { return c.IsAdmin() || c.ProjectID == im.Owner }

// DefaultStallTimeout is how long an upload may go without receiving a
// byte before it is abandoned (the image goes back to queued).
const DefaultStallTimeout = 60 * time.Second

// bodyReader returns the request body with a read deadline that moves
// forward as data arrives, so a client that stalls mid-body cannot keep an
// image in saving forever.
func (s *Service) bodyReader(w http.ResponseWriter, r *http.Request) io.Reader {
	timeout := s.StallTimeout
	if timeout <= 0 {
		return r.Body
	}
	return &stallReader{r: r.Body, rc: http.NewResponseController(w), timeout: timeout}
}

type stallReader struct {
	r       io.Reader
	rc      *http.ResponseController
	timeout time.Duration
	last    time.Time
}

func (sr *stallReader) Read(p []byte) (int, error) {
	// Moving the deadline costs a timer update; once per tenth of the
	// timeout is plenty.
	if now := time.Now(); now.Sub(sr.last) > sr.timeout/10 {
		if err := sr.rc.SetReadDeadline(now.Add(sr.timeout)); err == nil {
			sr.last = now
		}
	}
	n, err := sr.r.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = errs.Wrap(errs.Invalid, err, "The client stopped sending image data.")
	}
	return n, err
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
