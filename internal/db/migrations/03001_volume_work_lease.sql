-- +goose Up
-- Row leases on volume work: a process claims a row until lease_until and
-- renews the lease while it works, so several API processes on one
-- PostgreSQL share the work and a dead process's rows are taken over once
-- its lease expires.
ALTER TABLE volume_work ADD COLUMN lease_owner TEXT;
ALTER TABLE volume_work ADD COLUMN lease_until TEXT;
CREATE INDEX volume_work_lease ON volume_work (lease_until);

-- +goose Down
DROP INDEX volume_work_lease;
ALTER TABLE volume_work DROP COLUMN lease_until;
ALTER TABLE volume_work DROP COLUMN lease_owner;
