package image

import (
	"net/http"
	"slices"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// Image members: the projects a shared image is shared with.

func (m member) view() object {
	return object{{"created_at", isoTime(m.CreatedAt)}, {"image_id", m.ImageID}, {"member_id", m.Member},
		{"schema", "/v2/schemas/member"}, {"status", m.Status}, {"updated_at", isoTime(m.UpdatedAt)}}
}

// memberImage loads a visible image for the member API; only shared images
// have members.
func (s *Service) memberImage(r *http.Request) (*auth.Caller, *Image, error) {
	c := caller(r)
	im, err := s.getVisible(r.Context(), c, r.PathValue("id"))
	if err != nil {
		return nil, nil, err
	}
	if im.Visibility != "shared" {
		return nil, nil, errs.E(errs.Forbidden, "Only shared images have members.")
	}
	return c, im, nil
}

// ownerOrAdmin: some actions need the owning project, not just visibility.
func ownerOrAdmin(c *auth.Caller, im *Image) bool { return c.IsAdmin() || c.ProjectID == im.Owner }

// manageMembers authorizes adding or removing members: the owner's
// members and admins.
func manageMembers(c *auth.Caller, im *Image, action, verb string) error {
	if err := enforce(c, action, im); err != nil || !ownerOrAdmin(c, im) {
		return errs.E(errs.Forbidden, "Not allowed to %s members for image %s.", verb, im.ID)
	}
	return nil
}

func (s *Service) listMembers(w http.ResponseWriter, r *http.Request) error {
	c, im, err := s.memberImage(r)
	if err == nil {
		err = readable(c, "get_members")
	}
	if err != nil {
		return err
	}
	only := "" // another project sees only its own membership
	if !ownerOrAdmin(c, im) {
		only = c.ProjectID
	}
	ms, err := loadMembers(r.Context(), s.deps.DB, im.ID, only)
	if err != nil {
		return err
	}
	views := make([]object, 0, len(ms))
	for _, m := range ms {
		views = append(views, m.view())
	}
	api.WriteJSON(w, http.StatusOK, object{{"members", views}, {"schema", "/v2/schemas/members"}})
	return nil
}

func (s *Service) showMember(w http.ResponseWriter, r *http.Request) error {
	c, im, err := s.memberImage(r)
	if err == nil {
		err = readable(c, "get_members")
	}
	if err != nil {
		return err
	}
	id := r.PathValue("member")
	if !ownerOrAdmin(c, im) && id != c.ProjectID {
		return memberNotFound(im.ID, id)
	}
	return s.writeMember(w, r, im.ID, id)
}

// writeMember renders member id of image imageID; 404 when there is none
// (for an update: it was removed meanwhile).
func (s *Service) writeMember(w http.ResponseWriter, r *http.Request, imageID, id string) error {
	ms, err := loadMembers(r.Context(), s.deps.DB, imageID, id)
	if err == nil && len(ms) == 0 {
		err = memberNotFound(imageID, id)
	}
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, ms[0].view())
	return nil
}

func (s *Service) addMember(w http.ResponseWriter, r *http.Request) error {
	c, im, err := s.memberImage(r)
	if err == nil {
		err = manageMembers(c, im, "add_member", "create")
	}
	if err != nil {
		return err
	}
	id, err := decodeStringMember(r, "member", "Member to be added not specified",
		"Expected a member in the form: {\"member\": \"image_id\"}")
	if err != nil {
		return err
	}
	if id == "" {
		return errs.E(errs.Invalid, "Member can't be empty")
	}
	now := db.Now()
	m := member{ImageID: im.ID, Member: id, Status: "pending", CreatedAt: now, UpdatedAt: now}
	if err := insertMember(r.Context(), s.deps.DB, m); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, m.view())
	return nil
}

func (s *Service) updateMember(w http.ResponseWriter, r *http.Request) error {
	c, im, err := s.memberImage(r)
	if err != nil {
		return err
	}
	id := r.PathValue("member")
	// Only the member itself accepts or rejects (admins too).
	if !c.IsAdmin() && (id != c.ProjectID || !c.HasRole(auth.RoleMember)) {
		return errs.E(errs.Forbidden, "Not allowed to update members for image %s.", im.ID)
	}
	st, err := decodeStringMember(r, "status", "Status not specified",
		"Expected a status in the form: {\"status\": \"status\"}")
	if err != nil {
		return err
	}
	if !slices.Contains([]string{"pending", "accepted", "rejected"}, st) {
		return errs.E(errs.Invalid, "Provided object does not match schema 'member': '%s' is not one of ['pending', 'accepted', 'rejected']", st)
	}
	if err := setMemberStatus(r.Context(), s.deps.DB, im.ID, id, st); err != nil {
		return err
	}
	return s.writeMember(w, r, im.ID, id)
}

func (s *Service) deleteMember(w http.ResponseWriter, r *http.Request) error {
	c, im, err := s.memberImage(r)
	if err == nil {
		err = manageMembers(c, im, "delete_member", "delete")
	}
	if err != nil {
		return err
	}
	if err := deleteMember(r.Context(), s.deps.DB, im.ID, r.PathValue("member")); err != nil {
		return err
	}
	writeEmpty(w, http.StatusNoContent)
	return nil
}

// decodeStringMember decodes the request's JSON object and returns its key
// member, a string; missing and notString are Glance's 400 messages.
func decodeStringMember(r *http.Request, key, missing, notString string) (string, error) {
	body, err := decodeObject(r)
	if err != nil {
		return "", err
	}
	raw, ok := body[key]
	if !ok {
		return "", errs.E(errs.Invalid, "%s", missing)
	}
	v, ok := raw.(string)
	if !ok {
		return "", errs.E(errs.Invalid, "%s", notString)
	}
	return v, nil
}
