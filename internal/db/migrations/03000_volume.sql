-- +goose Up
-- Volume types; the default type __DEFAULT__ is created by the service at start.
CREATE TABLE volume_types (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT,
    is_public   BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TEXT NOT NULL,
    updated_at  TEXT
);

CREATE TABLE volume_type_extra_specs (
    type_id TEXT NOT NULL REFERENCES volume_types(id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    value   TEXT,
    PRIMARY KEY (type_id, key)
);

-- Projects that may use a private type.
CREATE TABLE volume_type_projects (
    type_id    TEXT NOT NULL REFERENCES volume_types(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    PRIMARY KEY (type_id, project_id)
);

CREATE TABLE volumes (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    name              TEXT,
    description       TEXT,
    size              BIGINT NOT NULL,
    status            TEXT NOT NULL,
    previous_status   TEXT,
    attach_status     TEXT NOT NULL DEFAULT 'detached',
    type_id           TEXT REFERENCES volume_types(id),
    availability_zone TEXT NOT NULL,
    host              TEXT,
    bootable          BOOLEAN NOT NULL DEFAULT FALSE,
    readonly          BOOLEAN NOT NULL DEFAULT FALSE,
    multiattach       BOOLEAN NOT NULL DEFAULT FALSE,
    image_id          TEXT,
    source_volid      TEXT,
    snapshot_id       TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT
);
-- Lists filter by project and page by (created_at, id) or other sort keys.
CREATE INDEX volumes_project_created ON volumes (project_id, created_at, id);
CREATE INDEX volumes_project_id ON volumes (project_id, id);
CREATE INDEX volumes_created ON volumes (created_at, id);
CREATE INDEX volumes_type ON volumes (type_id);

CREATE TABLE volume_metadata (
    volume_id TEXT NOT NULL REFERENCES volumes(id) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (volume_id, key)
);
CREATE INDEX volume_metadata_kv ON volume_metadata (key, value);

-- Glance metadata of the image a volume was created from (volume_image_metadata).
CREATE TABLE volume_image_metadata (
    volume_id TEXT NOT NULL REFERENCES volumes(id) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (volume_id, key)
);

-- Durable background work (create, create from image, upload to image).
-- A row exists until the work is finished; a restarted process resumes
-- or fails every row it finds, so no volume stays in a transitional status.
CREATE TABLE volume_work (
    id         TEXT PRIMARY KEY,
    volume_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0,
    request_id TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX volume_work_created ON volume_work (created_at);

-- User messages (GET /messages, 3.3+) for failed asynchronous work.
CREATE TABLE volume_messages (
    id               TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL,
    request_id       TEXT,
    resource_type    TEXT NOT NULL,
    resource_uuid    TEXT,
    event_id         TEXT NOT NULL,
    message_level    TEXT NOT NULL,
    user_message     TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    guaranteed_until TEXT NOT NULL
);
CREATE INDEX volume_messages_project ON volume_messages (project_id, created_at, id);

-- +goose Down
DROP TABLE volume_messages;
DROP TABLE volume_work;
DROP TABLE volume_image_metadata;
DROP TABLE volume_metadata;
DROP TABLE volumes;
DROP TABLE volume_type_projects;
DROP TABLE volume_type_extra_specs;
DROP TABLE volume_types;
