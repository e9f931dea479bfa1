package volume

import (
	"context"
	"net/http"
	"strings"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// vol is a volume row with its metadata.
type vol struct {
	ID, ProjectID, UserID string
	Name, Description     *string
	Size                  int64
	Status                string
	PreviousStatus        *string
	AttachStatus          string
	TypeID                *string
	TypeName              *string
	AZ                    string
	Host                  *string
	Bootable, Readonly    bool
	Multiattach           bool
	ImageID, SourceVolID  *string
	SnapshotID            *string
	CreatedAt, UpdatedAt  db.Timestamp
	Metadata              map[string]string
	ImageMetadata         map[string]string
}

const volCols = `v.id, v.project_id, v.user_id, v.name, v.description, v.size, v.status, v.previous_status,
	v.attach_status, v.type_id, t.name, v.availability_zone, v.host, v.bootable, v.readonly, v.multiattach,
	v.image_id, v.source_volid, v.snapshot_id, v.created_at, v.updated_at`

const volFrom = ` FROM volumes v LEFT JOIN volume_types t ON t.id = v.type_id`

func scanVol(sc interface{ Scan(...any) error }) (*vol, error) {
	v := &vol{}
	err := sc.Scan(&v.ID, &v.ProjectID, &v.UserID, &v.Name, &v.Description, &v.Size, &v.Status, &v.PreviousStatus,
		&v.AttachStatus, &v.TypeID, &v.TypeName, &v.AZ, &v.Host, &v.Bootable, &v.Readonly, &v.Multiattach,
		&v.ImageID, &v.SourceVolID, &v.SnapshotID, &v.CreatedAt, &v.UpdatedAt)
	return v, err
}

// loadKV fills a volume's metadata and image metadata.
func loadKV(ctx context.Context, q db.Querier, v *vol) error {
	var err error
	if v.Metadata, err = kv(ctx, q, `SELECT key, value FROM volume_metadata WHERE volume_id = ?`, v.ID); err != nil {
		return err
	}
	v.ImageMetadata, err = kv(ctx, q, `SELECT key, value FROM volume_image_metadata WHERE volume_id = ?`, v.ID)
	return err
}

func kv(ctx context.Context, q db.Querier, query string, args ...any) (map[string]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, rows.Err()
}

// getVolume loads a volume by id without access checks. Given the pool, it
// reads the row and its metadata in one snapshot (db.Snapshot).
func getVolume(ctx context.Context, q db.Querier, id string) (*vol, error) {
	return db.Snapshot(ctx, q, func(q db.Querier) (*vol, error) {
		v, err := scanVol(q.QueryRowContext(ctx, `SELECT `+volCols+volFrom+` WHERE v.id = ?`, id))
		if db.IsNoRows(err) {
			return nil, errs.E(errs.NotFound, "Volume %s could not be found.", id)
		}
		if err != nil {
			return nil, err
		}
		return v, loadKV(ctx, q, v)
	})
}

// volumeFor loads the request's volume: another project's volume is not
// found for non-admins, then action is enforced against its project.
func (s *Service) volumeFor(ctx context.Context, q db.Querier, r *http.Request, action string) (*vol, error) {
	id := r.PathValue("volume_id")
	v, err := getVolume(ctx, q, id)
	if err != nil {
		return nil, err
	}
	c := caller(r)
	if v.ProjectID != c.ProjectID && !c.IsAdmin() {
		return nil, errs.E(errs.NotFound, "Volume %s could not be found.", id)
	}
	if err := enforce(r, action, v.ProjectID); err != nil {
		return nil, err
	}
	return v, nil
}

// setStatus moves a volume from one of the from statuses to to, atomically;
// an Invalid error names the statuses required.
func setStatus(ctx context.Context, q db.Querier, id, to string, from ...string) error {
	ph := strings.TrimSuffix(strings.Repeat("?, ", len(from)), ", ")
	args := []any{to, db.Now(), id}
	for _, f := range from {
		args = append(args, f)
	}
	res, err := q.ExecContext(ctx, `UPDATE volumes SET previous_status = status, status = ?, updated_at = ? WHERE id = ? AND status IN (`+ph+`)`, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errs.E(errs.Invalid, "Invalid volume: Volume %s status must be %s", id, strings.Join(from, " or "))
	}
	return nil
}

// forceStatus sets a volume's status unconditionally (background work).
func forceStatus(ctx context.Context, q db.Querier, id, status string) error {
	_, err := q.ExecContext(ctx, `UPDATE volumes SET status = ?, updated_at = ? WHERE id = ?`, status, db.Now(), id)
	return err
}

// loadKVs fills the metadata of a page of volumes with one query per
// table, not one per volume.
func loadKVs(ctx context.Context, q db.Querier, vols []*vol) error {
	if len(vols) == 0 {
		return nil
	}
	byID := make(map[string]*vol, len(vols))
	args := make([]any, 0, len(vols))
	for _, v := range vols {
		v.Metadata, v.ImageMetadata = map[string]string{}, map[string]string{}
		byID[v.ID] = v
		args = append(args, v.ID)
	}
	in := strings.TrimSuffix(strings.Repeat("?, ", len(vols)), ", ")
	for _, table := range []string{"volume_metadata", "volume_image_metadata"} {
		rows, err := q.QueryContext(ctx, `SELECT volume_id, key, value FROM `+table+` WHERE volume_id IN (`+in+`)`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id, k, val string
			if err := rows.Scan(&id, &k, &val); err != nil {
				rows.Close()
				return err
			}
			if table == "volume_metadata" {
				byID[id].Metadata[k] = val
			} else {
				byID[id].ImageMetadata[k] = val
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}
