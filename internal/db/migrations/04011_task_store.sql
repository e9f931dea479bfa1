-- +goose Up
-- The image store a task's work writes to or reads from (an upload's
-- target store), so progress can be shown per store: metrics label it,
-- the dashboard's stores and transfers pages group by it.
ALTER TABLE tasks ADD COLUMN store TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE tasks DROP COLUMN store;
