-- +goose Up
-- Durable background work of every service (internal/task). A task is
-- claimed by one node (a random id per process) under a lease it renews
-- while it works; a node that dies stops renewing, and another node claims
-- the task once the lease has run out. epoch grows at every claim: a write
-- that finishes a task names the epoch it was claimed at, so a node that
-- lost its lease can never finish the task a second time.
CREATE TABLE tasks (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL DEFAULT '',
    payload     TEXT NOT NULL DEFAULT '{}',
    state       TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    epoch       BIGINT NOT NULL DEFAULT 0,
    not_before  TEXT NOT NULL,
    lease_owner TEXT,
    lease_until TEXT,
    last_error  TEXT NOT NULL DEFAULT '',
    request_id  TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    finished_at TEXT
);
-- Claims look for pending work that is due and running work whose lease ran out.
CREATE INDEX tasks_due ON tasks (state, not_before);
CREATE INDEX tasks_lease ON tasks (state, lease_until);
CREATE INDEX tasks_owner ON tasks (lease_owner);
CREATE INDEX tasks_subject ON tasks (subject);
CREATE INDEX tasks_finished ON tasks (finished_at);

-- +goose Down
DROP TABLE tasks;
