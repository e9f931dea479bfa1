package image

import (
	"context"

	"github.com/ashlar-dev/ashlar/internal/db"
)

// The SQL of Glance's import tasks (image_tasks), what GET /v2/tasks shows.

const taskCols = "id, image_id, type, status, owner, user_id, request_id, input, result, message, created_at, updated_at, expires_at"

// insertTask records a Glance task (the durable task that runs it is
// internal/task's).
func insertTask(ctx context.Context, q db.Querier, t task) error {
	_, err := q.ExecContext(ctx, `INSERT INTO image_tasks (id, image_id, type, status, owner, user_id, request_id, input,
message, created_at, updated_at, expires_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`, t.ID, t.ImageID, t.Type,
		t.Status, t.Owner, t.UserID, t.RequestID, t.Input, t.Message, t.CreatedAt, t.UpdatedAt, t.ExpiresAt)
	return err
}

// succeedTask ends a task with its result.
func succeedTask(ctx context.Context, q db.Querier, id, result, message string) error {
	_, err := q.ExecContext(ctx, "UPDATE image_tasks SET status = 'success', result = ?, message = ?, updated_at = ? WHERE id = ?",
		result, message, db.Now(), id)
	return err
}

// failTask ends a task with the reason it failed.
func failTask(ctx context.Context, q db.Querier, id, message string) error {
	_, err := q.ExecContext(ctx, "UPDATE image_tasks SET status = 'failure', message = ?, updated_at = ? WHERE id = ?",
		message, db.Now(), id)
	return err
}

// loadTasks returns one task (by id) or an image's tasks, newest first.
func loadTasks(ctx context.Context, q db.Querier, id, imageID string) ([]task, error) {
	where, arg := "id = ?", id
	if imageID != "" {
		where, arg = "image_id = ?", imageID
	}
	return db.QueryRows(ctx, q, func(r db.Row) (task, error) {
		var t task
		err := r.Scan(&t.ID, &t.ImageID, &t.Type, &t.Status, &t.Owner, &t.UserID, &t.RequestID, &t.Input,
			&t.Result, &t.Message, &t.CreatedAt, &t.UpdatedAt, &t.ExpiresAt)
		return t, err
	}, "SELECT "+taskCols+" FROM image_tasks WHERE "+where+" ORDER BY created_at DESC", arg)
}
