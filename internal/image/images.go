package image

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	tasks "github.com/ashlar-dev/ashlar/internal/task"
)

// The image resource: create, show, update, delete, (de)activate, tags.

func (s *Service) storeHeaders(w http.ResponseWriter) {
	ids := make([]string, 0, len(s.stores.All()))
	for _, st := range s.stores.All() {
		ids = append(ids, st.ID)
	}
	w.Header().Set("OpenStack-image-store-ids", strings.Join(ids, ","))
	w.Header().Set("OpenStack-image-import-methods", strings.Join(s.cfg.Image.ImportMethods, ","))
}

// createRequest is a parsed POST /v2/images body.
type createRequest struct {
	id    string // "" for a new UUID
	keys  []string
	attrs map[string]any
}

func parseCreate(r *http.Request) (*createRequest, error) {
	body, err := decodeObject(r)
	if err != nil {
		return nil, err
	}
	for _, k := range createDisallowed {
		if _, ok := body[k]; ok {
			return nil, errs.E(errs.Forbidden, "Attribute '%s' is read-only.", k)
		}
	}
	req := &createRequest{attrs: body}
	if v, ok := body["id"]; ok {
		id, _ := v.(string)
		if !uuidRE.MatchString(id) {
			return nil, schemaErr("%s does not match '%s'", jsonText(v), uuidPattern)
		}
		req.id = strings.ToLower(id)
	}
	for k := range body {
		if k != "id" {
			req.keys = append(req.keys, k)
		}
	}
	slices.Sort(req.keys)
	return req, nil
}

// newImage is the queued image the request describes, owned by c's project
// unless it names another owner.
func (req *createRequest) newImage(c *auth.Caller) (*Image, error) {
	now := db.Now()
	im := &Image{ID: req.id, Status: StatusQueued, Visibility: "shared", Owner: c.ProjectID,
		CreatedAt: now, UpdatedAt: now, Props: map[string]string{}, Tags: []string{}}
	if im.ID == "" {
		im.ID = uuid.NewString()
	}
	// Key by key in sorted order, so the first bad key decides the error
	// whatever its kind, as in Glance.
	for _, k := range req.keys {
		if err := checkCreateAttr(k); err != nil {
			return nil, err
		}
		if err := applyAttr(c, im, k, req.attrs[k]); err != nil {
			return nil, err
		}
	}
	return im, nil
}

func (s *Service) create(w http.ResponseWriter, r *http.Request) error {
	c := caller(r)
	if err := enforce(c, "add_image", nil); err != nil {
		return err
	}
	req, err := parseCreate(r)
	if err != nil {
		return err
	}
	im, err := req.newImage(c)
	if err != nil {
		return err
	}
	if im.Owner != c.ProjectID {
		if err := enforce(c, "add_image", im); err != nil {
			return err
		}
	}
	if err := s.deps.DB.InTx(r.Context(), func(tx *db.Tx) error { return insertImage(r.Context(), tx, im) }); err != nil {
		return err
	}
	s.storeHeaders(w)
	w.Header().Set("Location", strings.TrimSuffix(s.cfg.Image.PublicURL, "/")+"/v2/images/"+im.ID)
	writeBody(w, http.StatusCreated, s.appendView(nil, c, im))
	return nil
}

// getVisible loads an image the caller may see (404 otherwise).
func (s *Service) getVisible(ctx context.Context, c *auth.Caller, id string) (*Image, error) {
	return loadVisibleImage(ctx, s.deps.DB, visibleTo(c), id)
}

// visibleFor returns the image named by the request path if c may see it
// and may do action on it.
func (s *Service) visibleFor(ctx context.Context, c *auth.Caller, r *http.Request, action string) (*Image, error) {
	im, err := s.getVisible(ctx, c, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return im, enforce(c, action, im)
}

func (s *Service) show(w http.ResponseWriter, r *http.Request) error {
	c := caller(r)
	if err := readable(c, "get_image"); err != nil {
		return err
	}
	im, err := s.getVisible(r.Context(), c, r.PathValue("id"))
	if err != nil {
		return err
	}
	s.storeHeaders(w)
	writeBody(w, http.StatusOK, s.appendView(nil, c, im))
	return nil
}

func (s *Service) update(w http.ResponseWriter, r *http.Request) error {
	c := caller(r)
	ops, err := parsePatch(r)
	if err != nil {
		if errs.Is(err, errs.UnsupportedMedia) {
			w.Header().Set("Accept-Patch", patchV20+", "+patchV21)
		}
		return err
	}
	im, err := s.visibleFor(r.Context(), c, r, "modify_image")
	if err != nil {
		return err
	}
	for _, op := range ops {
		if err := applyPatch(c, im, op); err != nil {
			return err
		}
	}
	im.UpdatedAt = db.Now()
	if err := s.deps.DB.InTx(r.Context(), func(tx *db.Tx) error { return updateImage(r.Context(), tx, im) }); err != nil {
		return err
	}
	writeBody(w, http.StatusOK, s.appendView(nil, c, im))
	return nil
}

func (s *Service) delete(w http.ResponseWriter, r *http.Request) error {
	c := caller(r)
	ctx := r.Context()
	im, err := s.getVisible(ctx, c, r.PathValue("id"))
	if errs.Is(err, errs.NotFound) {
		err = errs.E(errs.NotFound, "Failed to find image %s to delete", r.PathValue("id"))
	}
	if err != nil {
		return err
	}
	if err := enforce(c, "delete_image", im); err != nil {
		return err
	}
	if im.Protected {
		return errs.E(errs.Forbidden, "Image %s is protected and cannot be deleted.", im.ID)
	}
	if err := s.checkNotInUse(ctx, im, im.Locations...); err != nil {
		return errs.E(errs.Conflict, "Image %s could not be deleted because it is in use: %s", im.ID, errs.Message(err))
	}
	// The objects to delete are recorded with the row's deletion, so a
	// store that is down or a node that dies cannot orphan them.
	objects := []storedObject{{store.StagingID, im.ID}}
	for _, l := range im.Locations {
		objects = append(objects, storedObject{l.Store, im.ID})
	}
	var t *tasks.Task
	err = s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		var err error
		if t, err = s.deleteObjects(ctx, tx, im.ID, objects); err != nil {
			return err
		}
		return deleteImageRow(ctx, tx, im.ID)
	})
	if t != nil && err != nil {
		t.Release()
	}
	if err != nil {
		return err
	}
	s.finishDelete(ctx, t)
	writeEmpty(w, http.StatusNoContent)
	return nil
}

func (s *Service) deactivate(w http.ResponseWriter, r *http.Request) error {
	return s.setActive(w, r, "deactivate", StatusActive, StatusDeactivated)
}

func (s *Service) reactivate(w http.ResponseWriter, r *http.Request) error {
	return s.setActive(w, r, "reactivate", StatusDeactivated, StatusActive)
}

// setActive moves an image between active and deactivated (a no-op when
// it is already there).
func (s *Service) setActive(w http.ResponseWriter, r *http.Request, action, from, to string) error {
	ctx := r.Context()
	im, err := s.visibleFor(ctx, caller(r), r, action)
	if err != nil {
		return err
	}
	if im.Status != from && im.Status != to {
		return errs.E(errs.Forbidden, "Not allowed to %s image in status '%s'", action, im.Status)
	}
	if _, err := setStatus(ctx, s.deps.DB, im.ID, to, from, to); err != nil {
		return err
	}
	writeEmpty(w, http.StatusNoContent)
	return nil
}

func (s *Service) addTag(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	tag := r.PathValue("tag")
	im, err := s.visibleFor(ctx, caller(r), r, "add_image_tag")
	if err != nil {
		return err
	}
	if len(tag) > 255 {
		return schemaErr("'%s' is too long", tag)
	}
	if err := addTag(ctx, s.deps.DB, im.ID, tag); err != nil {
		return err
	}
	if err := touchImage(ctx, s.deps.DB, im.ID); err != nil {
		return err
	}
	writeEmpty(w, http.StatusNoContent)
	return nil
}

func (s *Service) deleteTag(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	im, err := s.visibleFor(ctx, caller(r), r, "delete_image_tag")
	if err != nil {
		return err
	}
	if err := deleteTag(ctx, s.deps.DB, im.ID, r.PathValue("tag")); err != nil {
		return err
	}
	if err := touchImage(ctx, s.deps.DB, im.ID); err != nil {
		return err
	}
	writeEmpty(w, http.StatusNoContent)
	return nil
}
