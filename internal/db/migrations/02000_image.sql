-- +goose Up
-- Glance v2 images. Rows are removed on delete (no soft-deleted rows to page past).
CREATE TABLE images (
    id               TEXT PRIMARY KEY,
    name             TEXT,
    status           TEXT NOT NULL,
    visibility       TEXT NOT NULL,
    owner            TEXT NOT NULL,
    disk_format      TEXT,
    container_format TEXT,
    size             BIGINT,
    virtual_size     BIGINT,
    checksum         TEXT,
    os_hash_algo     TEXT,
    os_hash_value    TEXT,
    min_disk         BIGINT NOT NULL DEFAULT 0,
    min_ram          BIGINT NOT NULL DEFAULT 0,
    protected        BOOLEAN NOT NULL DEFAULT FALSE,
    os_hidden        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
-- Lists page by (sort key, id); the default sort is created_at desc, id desc.
CREATE INDEX images_created ON images (created_at, id);
CREATE INDEX images_updated ON images (updated_at, id);
CREATE INDEX images_name ON images (name, id);
CREATE INDEX images_owner ON images (owner, created_at, id);
CREATE INDEX images_visibility ON images (visibility, created_at, id);
CREATE INDEX images_status ON images (status, created_at, id);

-- Custom (additional) properties, including os_glance_* bookkeeping.
CREATE TABLE image_properties (
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    name     TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (image_id, name)
);
CREATE INDEX image_properties_name ON image_properties (name, value);

CREATE TABLE image_tags (
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tag      TEXT NOT NULL,
    PRIMARY KEY (image_id, tag)
);
CREATE INDEX image_tags_tag ON image_tags (tag, image_id);

-- One row per store copy; position keeps the order copies were added.
CREATE TABLE image_locations (
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    store    TEXT NOT NULL,
    url      TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (image_id, store)
);

-- Objects being written. A row exists from before the first byte is
-- written until the object is either recorded as a location or deleted,
-- so start-up recovery knows exactly which objects a crash orphaned.
CREATE TABLE image_pending_objects (
    image_id   TEXT NOT NULL,
    store      TEXT NOT NULL,
    object_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (store, object_key)
);

CREATE TABLE image_members (
    image_id   TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    member     TEXT NOT NULL,
    status     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (image_id, member)
);
CREATE INDEX image_members_member ON image_members (member, status, image_id);

CREATE TABLE image_tasks (
    id         TEXT PRIMARY KEY,
    image_id   TEXT NOT NULL,
    type       TEXT NOT NULL,
    status     TEXT NOT NULL,
    owner      TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    request_id TEXT NOT NULL,
    input      TEXT NOT NULL,
    result     TEXT,
    message    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    expires_at TEXT
);
CREATE INDEX image_tasks_image ON image_tasks (image_id, created_at);
CREATE INDEX image_tasks_status ON image_tasks (status);

-- +goose Down
DROP TABLE image_tasks;
DROP TABLE image_members;
DROP TABLE image_pending_objects;
DROP TABLE image_locations;
DROP TABLE image_tags;
DROP TABLE image_properties;
DROP TABLE images;
