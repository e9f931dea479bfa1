package image

import (
	"context"
	"net/http"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
)

// An image's store copies: where each lives and removing one.

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

// removeCopy deletes one store copy: the location goes first (recorded as
// pending so a crash cannot orphan the object), then the object.
func (s *Service) removeCopy(ctx context.Context, id, storeID string) {
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		if err := s.addPending(ctx, tx, id, storeID, id); err != nil {
			return err
		}
		return deleteLocation(ctx, tx, id, storeID)
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

// deleteFromStore is DELETE /v2/stores/{store}/{id}: one copy goes, the
// image stays.
func (s *Service) deleteFromStore(w http.ResponseWriter, r *http.Request) error {
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
	if err != nil {
		return err
	}
	switch _, known := s.stores.Get(sid); {
	case !known:
		return errs.E(errs.Conflict, "The selected store %s is not available on this node.", sid)
	case !im.HasStore(sid):
		return errs.E(errs.NotFound, "Image %s is not stored in store %s.", id, sid)
	case len(im.Locations) == 1:
		return errs.E(errs.Forbidden, "Cannot delete image data from the only store containing it. Consider deleting the image instead.")
	case im.Status != StatusActive:
		return errs.E(errs.Conflict, "It's not allowed to remove image data from store if image status is not 'active'")
	}
	s.removeCopy(context.WithoutCancel(ctx), id, sid)
	_ = touchImage(ctx, s.deps.DB, id)
	writeEmpty(w, http.StatusNoContent)
	return nil
}
