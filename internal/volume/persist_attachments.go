package volume

// Persistence of volume attachments and of the volume statuses they
// drive. Every SQL statement about the volume_attachments table is here.

import (
	"context"
	"encoding/json"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// attachment is a volume_attachments row. Its AttachStatus is one of
// reserved, attaching, attached, detaching, error_attaching,
// error_detaching (Cinder's VolumeAttachStatus).
type attachment struct {
	ID, VolumeID, ProjectID string
	InstanceUUID            *string
	AttachedHost            *string
	Mountpoint              *string
	AttachStatus            string
	// AttachMode is rw, ro, or "null" (Cinder's string) until set.
	AttachMode           string
	Connector            map[string]any
	ConnectionInfo       map[string]any
	AttachTime           db.Timestamp
	CreatedAt, UpdatedAt db.Timestamp
}

const attachmentCols = `a.id, a.volume_id, a.project_id, a.instance_uuid, a.attached_host, a.mountpoint,
	a.attach_status, a.attach_mode, a.connector, a.connection_info, a.attach_time, a.created_at, a.updated_at`

func scanAttachment(r db.Row) (*attachment, error) {
	a := &attachment{}
	var connector, info *string
	err := r.Scan(&a.ID, &a.VolumeID, &a.ProjectID, &a.InstanceUUID, &a.AttachedHost, &a.Mountpoint,
		&a.AttachStatus, &a.AttachMode, &connector, &info, &a.AttachTime, &a.CreatedAt, &a.UpdatedAt)
	if err != nil {
		return nil, err
	}
	if connector != nil {
		if err := json.Unmarshal([]byte(*connector), &a.Connector); err != nil {
			return nil, err
		}
	}
	if info != nil {
		if err := json.Unmarshal([]byte(*info), &a.ConnectionInfo); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// attachmentNotFound is Cinder's 404 for an attachment id.
func attachmentNotFound(id string) error {
	return errs.E(errs.NotFound, "Volume attachment could not be found with filter: attachment_id = %s.", id)
}

// getAttachment loads an attachment by id without access checks.
func getAttachment(ctx context.Context, q db.Querier, id string) (*attachment, error) {
	return rowByID(ctx, q, scanAttachment, attachmentNotFound, `SELECT `+attachmentCols+` FROM volume_attachments a WHERE a.id = ?`, id)
}

// jsonOrNil is m as JSON text, or NULL for nil.
func jsonOrNil(m map[string]any) (any, error) {
	if m == nil {
		return nil, nil
	}
	b, err := json.Marshal(m)
	return string(b), err
}

// attachmentJSON is an attachment's connector and connection_info columns
// (jsonOrNil).
func attachmentJSON(a *attachment) (connector, info any, err error) {
	if connector, err = jsonOrNil(a.Connector); err != nil {
		return nil, nil, err
	}
	if info, err = jsonOrNil(a.ConnectionInfo); err != nil {
		return nil, nil, err
	}
	return connector, info, nil
}

// insertAttachment records a new attachment.
func insertAttachment(ctx context.Context, tx *db.Tx, a *attachment) error {
	connector, info, err := attachmentJSON(a)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO volume_attachments (id, volume_id, project_id, instance_uuid, attached_host,
		mountpoint, attach_status, attach_mode, connector, connection_info, attach_time, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.VolumeID, a.ProjectID, a.InstanceUUID, a.AttachedHost, a.Mountpoint, a.AttachStatus, a.AttachMode,
		connector, info, a.AttachTime, a.CreatedAt)
	return err
}

// saveAttachment writes an attachment's mutable fields back.
func saveAttachment(ctx context.Context, q db.Querier, a *attachment) error {
	connector, info, err := attachmentJSON(a)
	if err != nil {
		return err
	}
	a.UpdatedAt = db.Now()
	_, err = q.ExecContext(ctx, `UPDATE volume_attachments SET instance_uuid = ?, attached_host = ?, mountpoint = ?,
		attach_status = ?, attach_mode = ?, connector = ?, connection_info = ?, attach_time = ?, updated_at = ? WHERE id = ?`,
		a.InstanceUUID, a.AttachedHost, a.Mountpoint, a.AttachStatus, a.AttachMode, connector, info, a.AttachTime,
		a.UpdatedAt, a.ID)
	return err
}

// setAttachStatus sets a volume's status and attach_status together, as
// an attachment's progress does (Cinder's volume_attached).
func setAttachStatus(ctx context.Context, q db.Querier, volumeID, status, attachStatus string) error {
	_, err := q.ExecContext(ctx, `UPDATE volumes SET status = ?, attach_status = ?, updated_at = ? WHERE id = ?`,
		status, attachStatus, db.Now(), volumeID)
	return err
}

// attachmentsOf returns the attachments of each of volumeIDs, oldest
// first, with one query.
func attachmentsOf(ctx context.Context, q db.Querier, volumeIDs []string) (map[string][]*attachment, error) {
	out := map[string][]*attachment{}
	if len(volumeIDs) == 0 {
		return out, nil
	}
	args := make([]any, len(volumeIDs))
	for i, id := range volumeIDs {
		args[i] = id
	}
	err := db.EachRow(ctx, q, func(r db.Row) error {
		a, err := scanAttachment(r)
		if err != nil {
			return err
		}
		out[a.VolumeID] = append(out[a.VolumeID], a)
		return nil
	}, `SELECT `+attachmentCols+` FROM volume_attachments a WHERE a.volume_id IN (`+db.Placeholders(len(volumeIDs))+`)
		ORDER BY a.created_at, a.id`, args...)
	return out, err
}

// loadAttachments fills the attachments of a page of volumes.
func loadAttachments(ctx context.Context, q db.Querier, vols []*vol) error {
	ids := make([]string, len(vols))
	for i, v := range vols {
		ids[i] = v.ID
	}
	m, err := attachmentsOf(ctx, q, ids)
	if err != nil {
		return err
	}
	for _, v := range vols {
		v.Attachments = m[v.ID]
	}
	return nil
}

// attachStatusMap is how a volume's status follows its attach_status
// (Cinder's ATTACH_STATUS_MAP; other values are the same word).
var attachStatusMap = map[string]string{"attached": "in-use", "detached": "available"}

// finishDetach deletes attachment id (if still there) and settles its
// volume's status and attach_status from the attachments left, as Cinder's
// volume_detached: the first of their statuses in alphabetical order
// (attached < attaching < detaching < reserved), ignoring error_* ones,
// or detached. An uploading or moving volume keeps its status when it
// ends up detached (its work restores it).
func finishDetach(ctx context.Context, tx *db.Tx, volumeID, id string) error {
	if _, err := lockVolumeRow(ctx, tx, volumeID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM volume_attachments WHERE id = ?`, id); err != nil {
		return err
	}
	return settleAttachStatus(ctx, tx, volumeID)
}

// settleAttachStatus is finishDetach's recomputation of a volume's status
// from its attachments.
func settleAttachStatus(ctx context.Context, tx *db.Tx, volumeID string) error {
	var attachStatus string
	err := tx.QueryRowContext(ctx, `SELECT attach_status FROM volume_attachments WHERE volume_id = ?
		AND SUBSTR(attach_status, 1, 6) <> 'error_' ORDER BY attach_status LIMIT 1`, volumeID).Scan(&attachStatus)
	if db.IsNoRows(err) {
		attachStatus, err = "detached", nil
	}
	if err != nil {
		return err
	}
	status := attachStatus
	if s, ok := attachStatusMap[attachStatus]; ok {
		status = s
	}
	_, err = tx.ExecContext(ctx, `UPDATE volumes SET attach_status = ?, updated_at = ?,
		status = CASE WHEN ? <> 'detached' OR (migration_status IS NULL AND status <> 'uploading')
			OR migration_status IN ('success', 'error') THEN ? ELSE status END
		WHERE id = ?`, attachStatus, db.Now(), attachStatus, status, volumeID)
	return err
}

// markUnattached settles a volume os-detach finds without attachments: it
// is detached and, when its status was an attach's, available. Cinder
// makes any volume available there; a volume being created, uploaded or
// deleted keeps its status, so its work is not undercut.
func markUnattached(ctx context.Context, q db.Querier, id string) error {
	_, err := q.ExecContext(ctx, `UPDATE volumes SET attach_status = 'detached', updated_at = ?,
		status = CASE WHEN status IN ('in-use', 'attaching', 'detaching', 'reserved') THEN 'available' ELSE status END
		WHERE id = ?`, db.Now(), id)
	return err
}

// beginDetaching moves an in-use, attached volume that is not moving to
// detaching; false when it is not in that state.
func beginDetaching(ctx context.Context, q db.Querier, id string) (bool, error) {
	return db.Changed(ctx, q, `UPDATE volumes SET previous_status = status, status = 'detaching', updated_at = ?
		WHERE id = ? AND status = 'in-use' AND attach_status = 'attached' AND `+notMigrating, db.Now(), id)
}

// lockVolumeRow takes a volume's row lock whatever its status, so that
// attachment changes of one volume are serialized; false when it is gone.
func lockVolumeRow(ctx context.Context, tx *db.Tx, id string) (bool, error) {
	return db.Changed(ctx, tx, `UPDATE volumes SET status = status WHERE id = ?`, id)
}

// attachmentFilter selects the attachments of a list.
type attachmentFilter struct {
	scope
	VolumeID, Status, InstanceUUID *string
}

// attachmentSortColumns maps sort keys to the expressions attachment lists
// order by.
var attachmentSortColumns = map[string]string{"id": "a.id", "created_at": "a.created_at",
	"updated_at": "COALESCE(a.updated_at, '')", "volume_id": "a.volume_id", "attach_status": "a.attach_status",
	"status": "a.attach_status", "instance_uuid": "COALESCE(a.instance_uuid, '')"}

// listAttachments reads one keyset-paged page of attachments.
func listAttachments(ctx context.Context, q db.Querier, f attachmentFilter, p listPage) ([]*attachment, bool, error) {
	var w whereClause
	if !f.AllProjects {
		w.add("a.project_id = ?", f.ProjectID)
	}
	if f.VolumeID != nil {
		w.add("a.volume_id = ?", *f.VolumeID)
	}
	if f.Status != nil {
		w.add("a.attach_status = ?", *f.Status)
	}
	if f.InstanceUUID != nil {
		w.add("a.instance_uuid = ?", *f.InstanceUUID)
	}
	where, args := w.clause()
	k := keyset{table: "volume_attachments", alias: "a", col: attachmentSortColumns[p.SortKey]}
	rows, more, err := pageRows(ctx, q, k, `SELECT `+attachmentCols+` FROM volume_attachments a`, where, args, p, scanAttachment)
	if db.IsNoRows(err) {
		return nil, false, markerNotFound(p.Marker)
	}
	return rows, more, err
}
