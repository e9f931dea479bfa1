-- +goose Up
-- The embedded Keystone v3 subset. Ids are 32-hex strings like Keystone's
-- (the Default domain is "default"); times are db.Timestamp text.
CREATE TABLE identity_domains (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    enabled     BOOLEAN NOT NULL DEFAULT TRUE
);

CREATE TABLE identity_projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    domain_id   TEXT NOT NULL REFERENCES identity_domains (id),
    description TEXT NOT NULL DEFAULT '',
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TEXT NOT NULL,
    UNIQUE (domain_id, name)
);

CREATE TABLE identity_users (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    domain_id          TEXT NOT NULL REFERENCES identity_domains (id),
    password_hash      TEXT NOT NULL DEFAULT '',
    enabled            BOOLEAN NOT NULL DEFAULT TRUE,
    email              TEXT NOT NULL DEFAULT '',
    description        TEXT NOT NULL DEFAULT '',
    default_project_id TEXT NOT NULL DEFAULT '',
    -- Tokens issued before this instant are invalid (password change, disable).
    tokens_valid_after TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    UNIQUE (domain_id, name)
);

CREATE TABLE identity_roles (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT ''
);

CREATE TABLE identity_assignments (
    user_id    TEXT NOT NULL REFERENCES identity_users (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES identity_projects (id) ON DELETE CASCADE,
    role_id    TEXT NOT NULL REFERENCES identity_roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, project_id, role_id)
);
CREATE INDEX identity_assignments_project ON identity_assignments (project_id);
CREATE INDEX identity_assignments_role ON identity_assignments (role_id);

CREATE TABLE identity_services (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    enabled     BOOLEAN NOT NULL DEFAULT TRUE
);
CREATE INDEX identity_services_type ON identity_services (type);

CREATE TABLE identity_endpoints (
    id         TEXT PRIMARY KEY,
    service_id TEXT NOT NULL REFERENCES identity_services (id) ON DELETE CASCADE,
    interface  TEXT NOT NULL,
    region     TEXT NOT NULL DEFAULT '',
    url        TEXT NOT NULL,
    enabled    BOOLEAN NOT NULL DEFAULT TRUE
);
CREATE INDEX identity_endpoints_service ON identity_endpoints (service_id);

-- Revoked tokens by audit id, kept until the token would have expired anyway.
CREATE TABLE identity_revocations (
    audit_id   TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);
CREATE INDEX identity_revocations_expires ON identity_revocations (expires_at);

-- +goose Down
DROP TABLE identity_revocations;
DROP TABLE identity_endpoints;
DROP TABLE identity_services;
DROP TABLE identity_assignments;
DROP TABLE identity_roles;
DROP TABLE identity_users;
DROP TABLE identity_projects;
DROP TABLE identity_domains;
