-- +goose Up
-- Key/value facts about this deployment (bootstrap state, schema notes).
CREATE TABLE ashlar_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- +goose Down
DROP TABLE ashlar_meta;
