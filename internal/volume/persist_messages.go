package volume

// Persistence of user messages (volume_messages). Every SQL statement
// about messages is here.

import (
	"context"

	"github.com/ashlar-dev/ashlar/internal/db"
	"github.com/ashlar-dev/ashlar/internal/errs"
)

// message is a user message about a resource's failed asynchronous work.
type message struct {
	ID, ProjectID            string
	RequestID                *string
	ResourceType             string
	ResourceUUID             *string
	EventID, Level, Text     string
	CreatedAt, GuaranteedTil db.Timestamp
}

const msgCols = `id, project_id, request_id, resource_type, resource_uuid, event_id, message_level, user_message, created_at, guaranteed_until`

func scanMessage(sc db.Row) (*message, error) {
	m := &message{}
	err := sc.Scan(&m.ID, &m.ProjectID, &m.RequestID, &m.ResourceType, &m.ResourceUUID, &m.EventID, &m.Level, &m.Text,
		&m.CreatedAt, &m.GuaranteedTil)
	return m, err
}

// insertMessage stores m.
func insertMessage(ctx context.Context, q db.Querier, m *message) error {
	_, err := q.ExecContext(ctx, `INSERT INTO volume_messages (`+msgCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.ID, m.ProjectID, m.RequestID, m.ResourceType, m.ResourceUUID, m.EventID, m.Level, m.Text, m.CreatedAt, m.GuaranteedTil)
	return err
}

// messageFilters are the message columns a list may be filtered on.
var messageFilters = []string{"resource_uuid", "resource_type", "event_id", "request_id", "message_level"}

// listMessages returns up to 1000 of a project's unexpired messages, newest
// first; filters maps columns of messageFilters to the value they must have.
func listMessages(ctx context.Context, q db.Querier, project string, filters map[string]string) ([]*message, error) {
	query := `SELECT ` + msgCols + ` FROM volume_messages WHERE project_id = ? AND guaranteed_until > ?`
	args := []any{project, db.Now()}
	for _, f := range messageFilters {
		if v, ok := filters[f]; ok {
			query += ` AND ` + f + ` = ?`
			args = append(args, v)
		}
	}
	return db.QueryRows(ctx, q, scanMessage, query+` ORDER BY created_at DESC, id DESC LIMIT 1000`, args...)
}

// getMessage loads a message by id.
func getMessage(ctx context.Context, q db.Querier, id string) (*message, error) {
	return rowByID(ctx, q, scanMessage, messageNotFound, `SELECT `+msgCols+` FROM volume_messages WHERE id = ?`, id)
}

// messageNotFound is Cinder's 404 for a message id.
func messageNotFound(id string) error {
	return errs.E(errs.NotFound, "Message %s could not be found.", id)
}

// deleteMessageRow removes a message.
func deleteMessageRow(ctx context.Context, q db.Querier, id string) error {
	_, err := q.ExecContext(ctx, `DELETE FROM volume_messages WHERE id = ?`, id)
	return err
}
