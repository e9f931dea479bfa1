-- +goose Up
-- Volume transfers (os-volume-transfer, volume-transfers): the offer of a
-- volume to whichever project presents its auth key. The key is never
-- stored: only a random salt and the HMAC-SHA256 of the key under it.
-- Accepted and deleted transfers stay as a record (deleted_at set), as
-- Cinder soft-deletes them; the API shows only live ones (deleted_at
-- NULL), and a volume has at most one: it is awaiting-transfer meanwhile.
CREATE TABLE volume_transfers (
    id                     TEXT PRIMARY KEY,
    volume_id              TEXT NOT NULL REFERENCES volumes(id) ON DELETE CASCADE,
    name                   TEXT,
    salt                   TEXT NOT NULL,
    crypt_hash             TEXT NOT NULL,
    no_snapshots           BOOLEAN NOT NULL DEFAULT FALSE,
    source_project_id      TEXT NOT NULL,
    destination_project_id TEXT,
    accepted               BOOLEAN NOT NULL DEFAULT FALSE,
    created_at             TEXT NOT NULL,
    updated_at             TEXT,
    deleted_at             TEXT
);
-- Lists page a project's live transfers (or everyone's) by (created_at, id).
CREATE INDEX volume_transfers_project ON volume_transfers (source_project_id, created_at, id);
CREATE INDEX volume_transfers_created ON volume_transfers (created_at, id);
CREATE INDEX volume_transfers_volume ON volume_transfers (volume_id);

-- A volume moving between backends (retype with migration,
-- os-migrate_volume): starting, migrating, success or error; NULL when it
-- never moved.
ALTER TABLE volumes ADD COLUMN migration_status TEXT;

-- +goose Down
ALTER TABLE volumes DROP COLUMN migration_status;
DROP TABLE volume_transfers;
