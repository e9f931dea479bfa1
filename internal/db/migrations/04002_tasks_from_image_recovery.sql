-- +goose Up
-- The image service's recovery moved to the one task system. What an older
-- release left recorded becomes tasks whose lease has run out, so the next
-- runner recovers it: a pending object (an upload or a delete that had not
-- finished) is purged, and its image, if saving or uploading, requeued; an
-- import that was running is given up (its attempts are spent: the old
-- record does not say enough to resume it) with its image back to where
-- the user can retry.
INSERT INTO tasks (id, kind, subject, payload, state, attempts, epoch, not_before, lease_owner, lease_until,
                   created_at, updated_at)
SELECT 'upgrade-' || p.store || '-' || p.object_key, 'image.upload', p.image_id,
       '{"store":"' || p.store || '","key":"' || p.object_key || '","during":"' ||
       CASE WHEN p.store = 'os_glance_staging_store' THEN 'uploading' ELSE 'saving' END || '"}',
       'running', 1, 1, p.heartbeat_at, 'upgraded', '1970-01-01T00:00:00.000000Z', p.heartbeat_at, p.heartbeat_at
FROM image_pending_objects p;
INSERT INTO tasks (id, kind, subject, payload, state, attempts, epoch, not_before, lease_owner, lease_until,
                   request_id, created_at, updated_at)
SELECT 'upgrade-' || t.id, 'image.import', t.image_id, '{"task_id":"' || t.id || '"}',
       'running', 1000, 1, t.updated_at, 'upgraded', '1970-01-01T00:00:00.000000Z', t.request_id, t.created_at, t.updated_at
FROM image_tasks t WHERE t.status IN ('pending', 'processing');
DROP TABLE image_pending_objects;

-- +goose Down
CREATE TABLE image_pending_objects (
    image_id     TEXT NOT NULL,
    store        TEXT NOT NULL,
    object_key   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    node         TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (store, object_key)
);
CREATE INDEX image_pending_objects_image ON image_pending_objects (image_id);
CREATE INDEX image_pending_objects_heartbeat ON image_pending_objects (heartbeat_at);
