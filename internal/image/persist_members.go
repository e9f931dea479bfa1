package image

import (
	"context"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// The SQL of image members.

// loadMembers returns an image's members, or only the member named only.
func loadMembers(ctx context.Context, q db.Querier, imageID, only string) ([]member, error) {
	query := "SELECT image_id, member, status, created_at, updated_at FROM image_members WHERE image_id = ?"
	args := []any{imageID}
	if only != "" {
		query += " AND member = ?"
		args = append(args, only)
	}
	return db.QueryRows(ctx, q, func(r db.Row) (member, error) {
		var m member
		err := r.Scan(&m.ImageID, &m.Member, &m.Status, &m.CreatedAt, &m.UpdatedAt)
		return m, err
	}, query+" ORDER BY created_at, member", args...)
}

// insertMember adds a member; errs.Conflict when it is already there.
func insertMember(ctx context.Context, q db.Querier, m member) error {
	_, err := q.ExecContext(ctx, "INSERT INTO image_members (image_id, member, status, created_at, updated_at) VALUES (?,?,?,?,?)",
		m.ImageID, m.Member, m.Status, m.CreatedAt, m.UpdatedAt)
	if db.IsUniqueViolation(err) {
		return errs.E(errs.Conflict, "Member %s is duplicated for image %s", m.Member, m.ImageID)
	}
	return err
}

// setMemberStatus changes a member's status; errs.NotFound when the image
// has no such member.
func setMemberStatus(ctx context.Context, q db.Querier, imageID, memberID, status string) error {
	ok, err := db.Changed(ctx, q, "UPDATE image_members SET status = ?, updated_at = ? WHERE image_id = ? AND member = ?",
		status, db.Now(), imageID, memberID)
	if err == nil && !ok {
		err = memberNotFound(imageID, memberID)
	}
	return err
}

// deleteMember removes a member; errs.NotFound when there is none.
func deleteMember(ctx context.Context, q db.Querier, imageID, memberID string) error {
	ok, err := db.Changed(ctx, q, "DELETE FROM image_members WHERE image_id = ? AND member = ?", imageID, memberID)
	if err == nil && !ok {
		err = memberNotFound(imageID, memberID)
	}
	return err
}

func memberNotFound(imageID, memberID string) error {
	return errs.E(errs.NotFound, "%s not found in the member list of the image %s.", memberID, imageID)
}
