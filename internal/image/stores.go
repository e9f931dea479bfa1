package image

import (
	"context"
	"net/http"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
	"github.com/ashlar-dev/ashlar/internal/image/store"
	tasks "github.com/ashlar-dev/ashlar/internal/task"
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

// removeCopy deletes one store copy: the location goes, with the object's
// deletion recorded in the same transaction, then the object.
func (s *Service) removeCopy(ctx context.Context, id, storeID string) {
	var t *tasks.Task
	err := s.deps.DB.InTx(ctx, func(tx *db.Tx) error {
		var err error
		if t, err = s.deleteObjects(ctx, tx, id, []storedObject{{storeID, id}}); err != nil {
			return err
		}
		return deleteLocation(ctx, tx, id, storeID)
	})
	if err != nil {
		if t != nil {
			t.Release()
		}
		s.deps.Logger.Error("removing image copy", "image", id, "store", storeID, "err", err)
		return
	}
	s.finishDelete(ctx, t)
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
	for _, l := range im.Locations {
		if l.Store == sid {
			if err := s.checkNotInUse(ctx, im, l); err != nil {
				return errs.E(errs.Conflict, "The data for Image %s could not be deleted because it is in use: %s", im.ID, errs.Message(err))
			}
		}
	}
	s.removeCopy(context.WithoutCancel(ctx), id, sid)
	_ = touchImage(ctx, s.deps.DB, id)
	writeEmpty(w, http.StatusNoContent)
	return nil
}

// checkNotInUse refuses (errs.Conflict, glance_store's InUseByStore) to
// remove image data that something outside the image service still uses:
// an rbd image whose snapshot volumes were cloned from. Glance refuses
// such a delete with 409 and keeps the image; a delete accepted here
// would only fail later, in the background, with the image already gone.
// Only a Conflict is returned.
func (s *Service) checkNotInUse(ctx context.Context, im *Image, locs ...Location) error {
	for _, l := range locs {
		if st := s.storeByID(l.Store); st != nil {
			err := st.InUse(ctx, im.ID)
			if errs.KindOf(err) == errs.Conflict {
				return err
			}
			if err != nil {
				// A store that cannot answer now does not block the delete:
				// the purge retries, and refuses then if the data is in use.
				s.deps.Logger.Warn("in-use check", "image", im.ID, "store", l.Store, "err", err)
			}
		}
	}
	return nil
}
