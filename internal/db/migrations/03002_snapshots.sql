-- +goose Up
-- Volume snapshots. A snapshot belongs to its volume: the foreign key keeps
-- a volume's row while it has snapshots (a volume is deleted after them).
-- volume_size is the volume's size when the snapshot was taken, progress is
-- Cinder's os-extended-snapshot-attributes:progress ("0%" .. "100%").
CREATE TABLE snapshots (
    id             TEXT PRIMARY KEY,
    volume_id      TEXT NOT NULL REFERENCES volumes(id),
    project_id     TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    name           TEXT,
    description    TEXT,
    status         TEXT NOT NULL,
    progress       TEXT NOT NULL DEFAULT '0%',
    volume_size    BIGINT NOT NULL,
    volume_type_id TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT
);
-- Lists filter by project and page by (created_at, id) or (sort key, id);
-- a volume's snapshots are found newest first (revert, cascade delete).
CREATE INDEX snapshots_project_created ON snapshots (project_id, created_at, id);
CREATE INDEX snapshots_project_id ON snapshots (project_id, id);
CREATE INDEX snapshots_created ON snapshots (created_at, id);
CREATE INDEX snapshots_volume ON snapshots (volume_id, created_at, id);

CREATE TABLE snapshot_metadata (
    snapshot_id TEXT NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, key)
);
CREATE INDEX snapshot_metadata_kv ON snapshot_metadata (key, value);

-- The image metadata of a bootable volume when it was snapshotted (Cinder's
-- volume_glance_metadata rows of a snapshot), given to volumes made from it.
CREATE TABLE snapshot_image_metadata (
    snapshot_id TEXT NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, key)
);

-- +goose Down
DROP TABLE snapshot_image_metadata;
DROP TABLE snapshot_metadata;
DROP TABLE snapshots;
