-- +goose Up
-- The nodes sharing the database (internal/task): each process registers
-- itself at start and heartbeats while its task runner renews leases, so
-- an operator sees which nodes run, and which have stopped heartbeating
-- without saying goodbye (stale: killed, partitioned). alive_until is the
-- heartbeat plus the node's lease: past it, the node's tasks are
-- claimable by any other node.
CREATE TABLE nodes (
    id           TEXT PRIMARY KEY,
    address      TEXT NOT NULL DEFAULT '',
    hostname     TEXT NOT NULL DEFAULT '',
    pid          BIGINT NOT NULL DEFAULT 0,
    version      TEXT NOT NULL DEFAULT '',
    services     TEXT NOT NULL DEFAULT '',
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    alive_until  TEXT NOT NULL,
    stopped_at   TEXT
);
CREATE INDEX nodes_address ON nodes (address, alive_until);
CREATE INDEX nodes_alive ON nodes (alive_until);

-- A task about data only one host has (a node-local staging directory)
-- names that host's advertised address: only a node advertising it
-- claims the task while such a node is alive; once none is, any node
-- claims it, to fail it with the reason.
ALTER TABLE tasks ADD COLUMN host TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE tasks DROP COLUMN host;
DROP INDEX nodes_alive;
DROP INDEX nodes_address;
DROP TABLE nodes;
