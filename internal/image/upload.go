package image

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	"github.com/ashlar-dev/ashlar/internal/imageformat"
	tasks "github.com/ashlar-dev/ashlar/internal/task"
)

// The data uploads: PUT /file (into a store) and PUT /stage (into the
// staging store, for glance-direct).

// DefaultStallTimeout is how long an upload, or a web-download's source,
// may go without sending a byte before it is abandoned (the image goes
// back to where the user can retry).
const DefaultStallTimeout = 60 * time.Second

var errDeleted = errors.New("image deleted during upload")

// uploadRequest is a parsed PUT /v2/images/{id}/file.
type uploadRequest struct {
	id    string
	store *store.Store
}

func (s *Service) parseUpload(r *http.Request) (*uploadRequest, error) {
	req := &uploadRequest{id: r.PathValue("id"), store: s.stores.Default()}
	if err := checkOctetStream(r); err != nil {
		return nil, err
	}
	if id := r.Header.Get("X-Image-Meta-Store"); id != "" {
		var ok bool
		if req.store, ok = s.stores.Get(id); !ok {
			return nil, errs.E(errs.Invalid, "Store for identifier %s not found", id)
		}
	}
	return req, nil
}

// checkOctetStream refuses bodies that are not raw image data.
func checkOctetStream(r *http.Request) error {
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	ct = strings.TrimSpace(strings.ToLower(ct))
	if ct != "" && ct != "application/octet-stream" {
		return errs.E(errs.UnsupportedMedia, "The request media type %s is not supported by this server.\n", ct)
	}
	return nil
}

func (s *Service) upload(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	im, err := s.visibleFor(ctx, caller(r), r, "upload_image")
	if err != nil {
		return err
	}
	req, err := s.parseUpload(r)
	if err != nil {
		return err
	}
	st := req.store
	switch {
	case im.DiskFormat == nil || im.ContainerFormat == nil:
		return errs.E(errs.Invalid, "Properties disk_format, container_format must be set prior to saving data.")
	case im.Status != StatusQueued:
		return errs.E(errs.Conflict, "Image status transition from %s to saving is not allowed", im.Status)
	case st.ReadOnly:
		return errReadOnlyStore
	}
	res, t, err := s.putBody(ctx, w, r, im, st, StatusSaving)
	if err != nil {
		return err
	}
	defer t.Release()
	if err := s.finishUpload(ctx, t, im, st, res, StatusSaving); err != nil {
		if errors.Is(err, errDeleted) {
			return s.deletedDuringUpload(ctx, t, im, st)
		}
		s.requeue(ctx, t, im, StatusSaving, err)
		return s.uploadErr(err, false, 0)
	}
	writeEmpty(w, http.StatusNoContent)
	return nil
}

// errReadOnlyStore is Glance's answer for writing into a read-only store.
var errReadOnlyStore = errs.E(errs.Gone, "Error in store configuration. Adding images to store is disabled.")

func (s *Service) stage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	im, err := s.visibleFor(ctx, caller(r), r, "upload_image")
	if err == nil {
		err = checkOctetStream(r)
	}
	if err == nil && !s.methodEnabled("glance-direct") {
		err = errs.E(errs.NotFound, "The glance-direct import method is not enabled.")
	}
	if err != nil {
		return err
	}
	if im.Status != StatusQueued {
		return errs.E(errs.Conflict, "Image status transition from %s to uploading is not allowed", im.Status)
	}
	st := s.stores.Staging()
	res, t, err := s.putBody(ctx, w, r, im, st, StatusUploading)
	if err != nil {
		return err
	}
	defer t.Release()
	dctx := context.WithoutCancel(ctx)
	err = s.deps.DB.InTx(dctx, func(tx *db.Tx) error {
		ok, err := setSize(dctx, tx, im.ID, res.Size, StatusUploading)
		if err != nil {
			return err
		}
		if !ok {
			return errDeleted
		}
		if err := setProps(dctx, tx, im.ID, s.stageHostProp()); err != nil {
			return err
		}
		return t.Complete(dctx, tx)
	})
	if errors.Is(err, errDeleted) {
		return s.deletedDuringUpload(ctx, t, im, st)
	}
	if err != nil {
		return err
	}
	writeEmpty(w, http.StatusNoContent)
	return nil
}

func (s *Service) methodEnabled(name string) bool {
	for _, m := range s.cfg.Image.ImportMethods {
		if m == name {
			return true
		}
	}
	return false
}

// limits returns the byte limit for a new object of the image's owner and
// whether the project quota (not the size cap) is what binds it.
func (s *Service) limits(ctx context.Context, owner string) (limit int64, quota bool, remaining int64, err error) {
	limit = s.cfg.Image.ImageSizeCap
	if q := s.cfg.Image.UserStorageQuota; q > 0 {
		used, err := projectUsage(ctx, s.deps.DB, owner)
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

func tooLargeErr(quota bool, size, remaining int64) error {
	if quota {
		return errs.E(errs.TooLarge, "Image exceeds the storage quota: The size of the data %d will exceed the limit. %d bytes remaining.", size, remaining)
	}
	return errs.E(errs.TooLarge, "The incoming image is too large: The provided image is too large.")
}

// putBody streams the request body into st as im's data, bounded by the
// owner's limits, with im moved from queued to during while it runs, under
// an upload task (so a node dying mid-way has its partial write rolled back
// by another). If the Put fails (the wrapper has deleted the partial
// object) the image goes back to queued and the error is Glance's answer;
// otherwise the caller finishes the task and releases it.
func (s *Service) putBody(ctx context.Context, w http.ResponseWriter, r *http.Request, im *Image, st *store.Store, during string) (store.PutResult, *tasks.Task, error) {
	limit, quota, remaining, err := s.limits(ctx, im.Owner)
	if err != nil {
		return store.PutResult{}, nil, err
	}
	if r.ContentLength > limit {
		return store.PutResult{}, nil, tooLargeErr(quota, r.ContentLength, remaining)
	}
	t, err := s.beginUpload(ctx, im, during, st)
	if err != nil {
		return store.PutResult{}, nil, err
	}
	t.SetTotal(r.ContentLength) // -1 when chunked
	// The task's context ends with the request and with the task's lease:
	// a node that lost it stops writing.
	res, err := st.Put(t.Context(), im.ID, t.Reader(s.bodyReader(w, r)), limit, s.cfg.Image.HashingAlgorithm)
	if err != nil {
		s.requeue(ctx, t, im, during, err)
		t.Release()
		return res, nil, s.uploadErr(err, quota, remaining)
	}
	return res, t, nil
}

// requeue hands an image whose data did not land back to queued, ending
// its upload task as failed.
func (s *Service) requeue(ctx context.Context, t *tasks.Task, im *Image, from string, cause error) {
	dctx := context.WithoutCancel(ctx)
	err := s.deps.DB.InTx(dctx, func(tx *db.Tx) error {
		if _, err := setStatus(dctx, tx, im.ID, StatusQueued, from); err != nil {
			return err
		}
		return t.Fail(dctx, tx, cause)
	})
	if err != nil {
		s.deps.Logger.Warn("requeueing a failed upload", "image", im.ID, "err", err)
	}
}

// deletedDuringUpload removes the data of an image deleted while it was
// being written and returns Glance's 410.
func (s *Service) deletedDuringUpload(ctx context.Context, t *tasks.Task, im *Image, st *store.Store) error {
	dctx := context.WithoutCancel(ctx)
	if err := st.Delete(dctx, im.ID); err == nil || errs.Is(err, errs.NotFound) {
		_ = t.Complete(dctx, s.deps.DB)
	} // else: left to the task's recovery, which purges the object
	return errs.E(errs.Gone, "Image %s could not be found after upload. The image may have been deleted during the upload.", im.ID)
}

// uploadErr turns a failed Put into Glance's answer. Errors reading the
// request body already carry their kind (bodyReader); a request cancelled
// because its client went away is the client's error too.
func (s *Service) uploadErr(err error, quota bool, remaining int64) error {
	switch {
	case errors.Is(err, store.ErrTooLarge):
		return tooLargeErr(quota, 0, remaining)
	case errs.KindOf(err) != errs.Other:
		return err
	case errors.Is(err, context.Canceled):
		return errs.Wrap(errs.Invalid, err, errBodyRead)
	}
	return err
}

// finishUpload records a written object: the image becomes active with the
// sizes and hashes of the one pass, and the store becomes a location.
func (s *Service) finishUpload(ctx context.Context, t *tasks.Task, im *Image, st *store.Store, res store.PutResult, from string) error {
	d := imageData{Size: res.Size, VirtualSize: imageformat.VirtualSize(deref(im.DiskFormat), res.Head, res.Size),
		MD5: res.MD5, Algo: s.cfg.Image.HashingAlgorithm, Hash: res.Hash}
	ctx = context.WithoutCancel(ctx)
	return s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		ok, err := activate(ctx, tx, im.ID, from, d)
		if err != nil {
			return err
		}
		if !ok {
			return errDeleted
		}
		if err := addLocation(ctx, tx, im.ID, st.ID, objectURL(st, im.ID)); err != nil {
			return err
		}
		return t.Complete(ctx, tx)
	})
}

// errBodyRead is Glance's message for image data the request did not deliver.
const errBodyRead = "Error reading the image data from the request."

// bodyReader returns the request body as an upload reads it: every error
// reading it (a client gone, a malformed chunked encoding, a body over
// http.MaxBytesReader) is the client's (400), and a read deadline that
// moves forward as data arrives abandons a client that stalls mid-body,
// so it cannot keep an image in saving forever.
func (s *Service) bodyReader(w http.ResponseWriter, r *http.Request) io.Reader {
	return &clientBody{r: r.Body, rc: http.NewResponseController(w), timeout: s.StallTimeout}
}

type clientBody struct {
	r  io.Reader
	rc *http.ResponseController
	// timeout <= 0: no stall rule.
	timeout time.Duration
	last    time.Time
}

func (cb *clientBody) Read(p []byte) (int, error) {
	// Moving the deadline costs a timer update; once per tenth of the
	// timeout is plenty.
	if now := time.Now(); cb.timeout > 0 && now.Sub(cb.last) > cb.timeout/10 {
		if err := cb.rc.SetReadDeadline(now.Add(cb.timeout)); err == nil {
			cb.last = now
		}
	}
	n, err := cb.r.Read(p)
	switch {
	case err == nil, err == io.EOF:
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = errs.Wrap(errs.Invalid, err, "The client stopped sending image data.")
	default:
		err = errs.Wrap(errs.Invalid, err, errBodyRead)
	}
	return n, err
}
