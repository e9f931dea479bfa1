-- +goose Up
-- Progress of long work, shown where users and operators look (image
-- tasks, volume views, metrics, the dashboard): bytes done and expected
-- (-1: unknown), when the current attempt started and when bytes last
-- moved (a task whose bytes stop moving is stalled); the project the work
-- belongs to, so a member sees their own.
ALTER TABLE tasks ADD COLUMN project_id TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN bytes_done BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN bytes_total BIGINT NOT NULL DEFAULT -1;
ALTER TABLE tasks ADD COLUMN started_at TEXT;
ALTER TABLE tasks ADD COLUMN moved_at TEXT;
CREATE INDEX tasks_project ON tasks (project_id, created_at);

-- +goose Down
DROP INDEX tasks_project;
ALTER TABLE tasks DROP COLUMN moved_at;
ALTER TABLE tasks DROP COLUMN started_at;
ALTER TABLE tasks DROP COLUMN bytes_total;
ALTER TABLE tasks DROP COLUMN bytes_done;
ALTER TABLE tasks DROP COLUMN project_id;
