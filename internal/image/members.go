package image

import (
	"context"
	"net/http"
	"slices"

	"github.com/ashlar-dev/ashlar/internal/api"
	"github.com/ashlar-dev/ashlar/internal/auth"
	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

type member struct {
	ImageID, Member, Status string
	CreatedAt, UpdatedAt    db.Timestamp
}

func (m member) view() object {
	return object{{"created_at", isoTime(m.CreatedAt)}, {"image_id", m.ImageID}, {"member_id", m.Member},
		{"schema", "/v2/schemas/member"}, {"status", m.Status}, {"updated_at", isoTime(m.UpdatedAt)}}
}

func (s *Service) members(ctx context.Context, imageID, only string) ([]member, error) {
	q := "SELECT image_id, member, status, created_at, updated_at FROM image_members WHERE image_id = ?"
	args := []any{imageID}
	if only != "" {
		q += " AND member = ?"
		args = append(args, only)
	}
	rows, err := s.deps.DB.QueryContext(ctx, q+" ORDER BY created_at, member", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []member
	for rows.Next() {
		var m member
		if err := rows.Scan(&m.ImageID, &m.Member, &m.Status, &m.CreatedAt, &m.UpdatedAt); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
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

func (s *Service) listMembers(w http.ResponseWriter, r *http.Request) {
	c, im, err := s.memberImage(r)
	if err == nil {
		err = readable(c, "get_members")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	only := ""
	if !c.IsAdmin() && im.Owner != c.ProjectID {
		only = c.ProjectID
	}
	ms, err := s.members(r.Context(), im.ID, only)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	views := make([]object, 0, len(ms))
	for _, m := range ms {
		views = append(views, m.view())
	}
	api.WriteJSON(w, http.StatusOK, object{{"members", views}, {"schema", "/v2/schemas/members"}})
}

func (s *Service) showMember(w http.ResponseWriter, r *http.Request) {
	c, im, err := s.memberImage(r)
	if err == nil {
		err = readable(c, "get_members")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id := r.PathValue("member")
	if !c.IsAdmin() && im.Owner != c.ProjectID && id != c.ProjectID {
		s.fail(w, r, errs.E(errs.NotFound, "%s not found in the member list of the image %s.", id, im.ID))
		return
	}
	ms, err := s.members(r.Context(), im.ID, id)
	if err == nil && len(ms) == 0 {
		err = errs.E(errs.NotFound, "%s not found in the member list of the image %s.", id, im.ID)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, ms[0].view())
}

func (s *Service) addMember(w http.ResponseWriter, r *http.Request) {
	c, im, err := s.memberImage(r)
	if err == nil {
		if err = enforce(c, "add_member", im); err != nil || im.Owner != c.ProjectID && !c.IsAdmin() {
			err = errs.E(errs.Forbidden, "Not allowed to create members for image %s.", r.PathValue("id"))
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id, err := decodeStringMember(r, "member", "Member to be added not specified",
		"Expected a member in the form: {\"member\": \"image_id\"}")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if id == "" {
		s.fail(w, r, errs.E(errs.Invalid, "Member can't be empty"))
		return
	}
	now := db.Now()
	m := member{ImageID: im.ID, Member: id, Status: "pending", CreatedAt: now, UpdatedAt: now}
	_, err = s.deps.DB.ExecContext(r.Context(), "INSERT INTO image_members (image_id, member, status, created_at, updated_at) VALUES (?,?,?,?,?)",
		m.ImageID, m.Member, m.Status, m.CreatedAt, m.UpdatedAt)
	if db.IsUniqueViolation(err) {
		err = errs.E(errs.Conflict, "Member %s is duplicated for image %s", id, im.ID)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, m.view())
}

func (s *Service) updateMember(w http.ResponseWriter, r *http.Request) {
	c, im, err := s.memberImage(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id := r.PathValue("member")
	// Only the member itself accepts or rejects (admins too).
	if !c.IsAdmin() && (id != c.ProjectID || !c.HasRole(auth.RoleMember)) {
		s.fail(w, r, errs.E(errs.Forbidden, "Not allowed to update members for image %s.", im.ID))
		return
	}
	st, err := decodeStringMember(r, "status", "Status not specified",
		"Expected a status in the form: {\"status\": \"status\"}")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !slices.Contains([]string{"pending", "accepted", "rejected"}, st) {
		s.fail(w, r, errs.E(errs.Invalid, "Provided object does not match schema 'member': '%s' is not one of ['pending', 'accepted', 'rejected']", st))
		return
	}
	res, err := s.deps.DB.ExecContext(r.Context(), "UPDATE image_members SET status = ?, updated_at = ? WHERE image_id = ? AND member = ?",
		st, db.Now(), im.ID, id)
	if err == nil {
		if n, _ := res.RowsAffected(); n == 0 {
			err = errs.E(errs.NotFound, "%s not found in the member list of the image %s.", id, im.ID)
		}
	}
	var ms []member
	if err == nil {
		ms, err = s.members(r.Context(), im.ID, id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, ms[0].view())
}

func (s *Service) deleteMember(w http.ResponseWriter, r *http.Request) {
	c, im, err := s.memberImage(r)
	if err == nil {
		if err = enforce(c, "delete_member", im); err != nil || im.Owner != c.ProjectID && !c.IsAdmin() {
			err = errs.E(errs.Forbidden, "Not allowed to delete members for image %s.", im.ID)
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id := r.PathValue("member")
	res, err := s.deps.DB.ExecContext(r.Context(), "DELETE FROM image_members WHERE image_id = ? AND member = ?", im.ID, id)
	if err == nil {
		if n, _ := res.RowsAffected(); n == 0 {
			err = errs.E(errs.NotFound, "%s not found in the member list of the image %s.", id, im.ID)
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeEmpty(w, http.StatusNoContent)
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
