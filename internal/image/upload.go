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
	res, err := s.putBody(ctx, w, r, im, st, StatusSaving)
	if err != nil {
		return err
	}
	if err := s.finishUpload(ctx, im, st, res, StatusSaving); err != nil {
		if errors.Is(err, errDeleted) {
			return s.deletedDuringUpload(ctx, im, st)
		}
		s.requeue(ctx, im, st, StatusSaving)
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
	res, err := s.putBody(ctx, w, r, im, st, StatusUploading)
	if err != nil {
		return err
	}
	dctx := context.WithoutCancel(ctx)
	err = s.deps.DB.InTx(dctx, func(tx *db.Tx) error {
		ok, err := setSize(dctx, tx, im.ID, res.Size, StatusUploading)
		if err != nil {
			return err
		}
		if !ok {
			return errDeleted
		}
		return s.dropPending(dctx, tx, st.ID, im.ID)
	})
	if errors.Is(err, errDeleted) {
		return s.deletedDuringUpload(ctx, im, st)
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

// transition moves an image from one status to another, recording the
// object about to be written, or 409 like Glance.
func (s *Service) transition(ctx context.Context, id, from, to, storeID, key string) error {
	return s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if err := moveStatus(ctx, tx, id, from, to); err != nil {
			return err
		}
		return s.addPending(ctx, tx, id, storeID, key)
	})
}

// requeue hands an image whose data did not land back to queued and
// forgets its pending object.
func (s *Service) requeue(ctx context.Context, im *Image, st *store.Store, from string) {
	dctx := context.WithoutCancel(ctx)
	_, _ = setStatus(dctx, s.deps.DB, im.ID, StatusQueued, from)
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
func (s *Service) finishUpload(ctx context.Context, im *Image, st *store.Store, res store.PutResult, from string) error {
	d := imageData{Size: res.Size, VirtualSize: virtualSize(deref(im.DiskFormat), res.Head, res.Size),
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
		return s.dropPending(ctx, tx, st.ID, im.ID)
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
