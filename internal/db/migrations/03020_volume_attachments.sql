-- +goose Up
-- Volume attachments (Cinder's volume_attachment). A row lives from the
-- reserve (attachments API create, os-attach) to the detach, which deletes
-- it; it goes with its volume. project_id is the volume's, copied so lists
-- page by (project, sort key, id) without a join (an attached volume cannot
-- change project: transfers need it available). connector and
-- connection_info are JSON; attach_mode is 'null' until a connector sets it,
-- as in Cinder.
CREATE TABLE volume_attachments (
    id              TEXT PRIMARY KEY,
    volume_id       TEXT NOT NULL REFERENCES volumes(id) ON DELETE CASCADE,
    project_id      TEXT NOT NULL,
    instance_uuid   TEXT,
    attached_host   TEXT,
    mountpoint      TEXT,
    attach_status   TEXT NOT NULL,
    attach_mode     TEXT NOT NULL DEFAULT 'null',
    connector       TEXT,
    connection_info TEXT,
    attach_time     TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT
);
CREATE INDEX volume_attachments_project_created ON volume_attachments (project_id, created_at, id);
CREATE INDEX volume_attachments_created ON volume_attachments (created_at, id);
CREATE INDEX volume_attachments_volume ON volume_attachments (volume_id, created_at, id);

-- +goose Down
DROP TABLE volume_attachments;
