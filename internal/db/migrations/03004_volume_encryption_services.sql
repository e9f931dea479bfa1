-- +goose Up
-- Encryption types of volume types (/types/{id}/encryption): metadata for
-- the clients that encrypt; Ashlar itself does not encrypt volumes.
CREATE TABLE volume_type_encryption (
    type_id          TEXT PRIMARY KEY REFERENCES volume_types(id) ON DELETE CASCADE,
    encryption_id    TEXT NOT NULL,
    provider         TEXT,
    cipher           TEXT,
    key_size         BIGINT,
    control_location TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT
);

-- What operators set on the volume services (os-services enable, disable,
-- freeze, thaw). A service is one backend's cinder-volume or the
-- scheduler (backend ''), whichever node serves it: the row is keyed by
-- the backend name, not by a node's host name. No row: enabled, thawed.
CREATE TABLE volume_services (
    service_binary  TEXT NOT NULL,
    backend         TEXT NOT NULL,
    disabled        BOOLEAN NOT NULL DEFAULT FALSE,
    disabled_reason TEXT,
    frozen          BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (service_binary, backend)
);

-- +goose Down
DROP TABLE volume_services;
DROP TABLE volume_type_encryption;
