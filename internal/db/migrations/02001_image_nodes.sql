-- +goose Up
-- name and size sort with NULLs folded (see sortExpr in internal/image), so
-- index the same expressions.
DROP INDEX images_name;
CREATE INDEX images_name ON images (COALESCE(name, ''), id);
CREATE INDEX images_size ON images (COALESCE(size, -1), id);
-- Property values can be long (PostgreSQL refuses big btree entries);
-- filters look properties up through the primary key.
DROP INDEX image_properties_name;

-- Pending objects name the node (its [image] public_url) writing them and
-- carry a heartbeat, so a node cleans up only its own or dead nodes' writes.
ALTER TABLE image_pending_objects RENAME COLUMN created_at TO heartbeat_at;
ALTER TABLE image_pending_objects ADD COLUMN node TEXT NOT NULL DEFAULT '';
CREATE INDEX image_pending_objects_image ON image_pending_objects (image_id);
CREATE INDEX image_pending_objects_heartbeat ON image_pending_objects (heartbeat_at);

-- Import tasks likewise: the node runs them and refreshes updated_at.
ALTER TABLE image_tasks ADD COLUMN node TEXT NOT NULL DEFAULT '';
DROP INDEX image_tasks_status;
CREATE INDEX image_tasks_status ON image_tasks (status, updated_at);

-- +goose Down
DROP INDEX image_tasks_status;
CREATE INDEX image_tasks_status ON image_tasks (status);
ALTER TABLE image_tasks DROP COLUMN node;
DROP INDEX image_pending_objects_heartbeat;
DROP INDEX image_pending_objects_image;
ALTER TABLE image_pending_objects DROP COLUMN node;
ALTER TABLE image_pending_objects RENAME COLUMN heartbeat_at TO created_at;
CREATE INDEX image_properties_name ON image_properties (name, value);
DROP INDEX images_size;
DROP INDEX images_name;
CREATE INDEX images_name ON images (name, id);
