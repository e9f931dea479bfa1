-- +goose Up
-- Volume backups. A backup outlives its volume (and the volume's backend):
-- volume_id is not a foreign key. parent_id names the backup an
-- incremental one builds on; a backup with dependants is not deleted.
-- size is the volume's size in GiB (Cinder's, counted against
-- backup_gigabytes), stored_bytes what the backup's own objects take.
-- service_metadata names the backup's objects in its container (the id it
-- was made under: an imported record may point at another id's objects).
-- previous_status is the volume's (or snapshot's) status before the
-- backup or restore, set back when the work ends.
CREATE TABLE backups (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    volume_id         TEXT NOT NULL,
    snapshot_id       TEXT,
    parent_id         TEXT,
    name              TEXT,
    description       TEXT,
    status            TEXT NOT NULL,
    fail_reason       TEXT,
    availability_zone TEXT,
    container         TEXT NOT NULL,
    service_metadata  TEXT NOT NULL,
    size              BIGINT NOT NULL,
    object_count      BIGINT NOT NULL DEFAULT 0,
    stored_bytes      BIGINT NOT NULL DEFAULT 0,
    restore_volume_id TEXT,
    previous_status   TEXT,
    data_timestamp    TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT
);
CREATE INDEX backups_project_created ON backups (project_id, created_at, id);
CREATE INDEX backups_project_id ON backups (project_id, id);
CREATE INDEX backups_created ON backups (created_at, id);
CREATE INDEX backups_volume ON backups (volume_id, data_timestamp, id);
CREATE INDEX backups_parent ON backups (parent_id);

CREATE TABLE backup_metadata (
    backup_id TEXT NOT NULL REFERENCES backups(id) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (backup_id, key)
);
CREATE INDEX backup_metadata_kv ON backup_metadata (key, value);

-- +goose Down
DROP TABLE backup_metadata;
DROP TABLE backups;
