-- +goose Up
-- Keystone keeps the attributes it has no column for as given, in a JSON
-- object ("extra"), and returns them with the entity: a user's email and
-- description, an endpoint's name and description, anything a client adds.
-- Users also get their options (lock_password, multi_factor_auth_rules, ...).
-- A user's email and description columns, and a service's description,
-- are read into extra from now on (and emptied by the row's next write).
ALTER TABLE identity_users ADD COLUMN extra TEXT NOT NULL DEFAULT '{}';
ALTER TABLE identity_users ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
ALTER TABLE identity_projects ADD COLUMN extra TEXT NOT NULL DEFAULT '{}';
ALTER TABLE identity_roles ADD COLUMN extra TEXT NOT NULL DEFAULT '{}';
ALTER TABLE identity_services ADD COLUMN extra TEXT NOT NULL DEFAULT '{}';
ALTER TABLE identity_endpoints ADD COLUMN extra TEXT NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE identity_endpoints DROP COLUMN extra;
ALTER TABLE identity_services DROP COLUMN extra;
ALTER TABLE identity_roles DROP COLUMN extra;
ALTER TABLE identity_projects DROP COLUMN extra;
ALTER TABLE identity_users DROP COLUMN options;
ALTER TABLE identity_users DROP COLUMN extra;
