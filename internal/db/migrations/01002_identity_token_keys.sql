-- +goose Up
-- The token signing keys, shared through the database so that a token one
-- node issues validates on every other. The newest key whose signs_from
-- has come signs; every key verifies until the tokens it signed have
-- expired (its successor's signs_from plus the token lifetime). A new key
-- is staged (signs_from a little ahead) so that every node has loaded it
-- before any node signs with it.
CREATE TABLE identity_token_keys (
    id         TEXT PRIMARY KEY,
    secret     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    signs_from TEXT NOT NULL
);

-- +goose Down
DROP TABLE identity_token_keys;
