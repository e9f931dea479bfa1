-- +goose Up
-- Volume work moved to the one task system: work recorded by an older
-- release is carried over as pending tasks (claimed by the next runner),
-- keeping its attempts, and the old table goes.
INSERT INTO tasks (id, kind, subject, payload, state, attempts, epoch, not_before, request_id, created_at, updated_at)
SELECT id, 'volume.' || kind, volume_id, payload, 'pending', attempts, 1, created_at, COALESCE(request_id, ''),
       created_at, created_at
FROM volume_work;
DROP TABLE volume_work;

-- +goose Down
CREATE TABLE volume_work (
    id          TEXT PRIMARY KEY,
    volume_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    request_id  TEXT,
    created_at  TEXT NOT NULL,
    lease_owner TEXT,
    lease_until TEXT
);
CREATE INDEX volume_work_created ON volume_work (created_at);
CREATE INDEX volume_work_lease ON volume_work (lease_until);
