-- +goose Up
-- Cinder's quotas: limits a project has been given (quotas), those of quota
-- classes (only the "default" class applies to projects), and what each
-- project uses (quota_usages), kept in the transaction that changes the
-- rows counted, so a check and its charge are one atomic step. Resource
-- keys are Cinder's (volumes, gigabytes, snapshots, ...); a per-type key
-- is "<resource>/<volume type id>" (shown as <resource>_<type name>), so a
-- type's rename needs no rewrite.
CREATE TABLE quotas (
    project_id TEXT NOT NULL,
    resource   TEXT NOT NULL,
    hard_limit BIGINT NOT NULL,
    PRIMARY KEY (project_id, resource)
);

CREATE TABLE quota_classes (
    class_name TEXT NOT NULL,
    resource   TEXT NOT NULL,
    hard_limit BIGINT NOT NULL,
    PRIMARY KEY (class_name, resource)
);

-- reserved is usage promised to an operation still running (an extend),
-- in_use what the rows hold.
CREATE TABLE quota_usages (
    project_id TEXT NOT NULL,
    resource   TEXT NOT NULL,
    in_use     BIGINT NOT NULL DEFAULT 0,
    reserved   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, resource)
);

-- Volumes and snapshots made before quotas were kept are counted once.
INSERT INTO quota_usages (project_id, resource, in_use, reserved)
    SELECT project_id, 'volumes', COUNT(*), 0 FROM volumes GROUP BY project_id;
INSERT INTO quota_usages (project_id, resource, in_use, reserved)
    SELECT project_id, 'volumes/' || type_id, COUNT(*), 0 FROM volumes WHERE type_id IS NOT NULL GROUP BY project_id, type_id;
INSERT INTO quota_usages (project_id, resource, in_use, reserved)
    SELECT project_id, 'snapshots', COUNT(*), 0 FROM snapshots GROUP BY project_id;
INSERT INTO quota_usages (project_id, resource, in_use, reserved)
    SELECT project_id, 'snapshots/' || volume_type_id, COUNT(*), 0 FROM snapshots WHERE volume_type_id IS NOT NULL
    GROUP BY project_id, volume_type_id;
INSERT INTO quota_usages (project_id, resource, in_use, reserved)
    SELECT project_id, 'gigabytes', SUM(gb), 0 FROM (
        SELECT project_id, size AS gb FROM volumes
        UNION ALL SELECT project_id, volume_size FROM snapshots) AS u GROUP BY project_id;
INSERT INTO quota_usages (project_id, resource, in_use, reserved)
    SELECT project_id, 'gigabytes/' || type_id, SUM(gb), 0 FROM (
        SELECT project_id, type_id, size AS gb FROM volumes WHERE type_id IS NOT NULL
        UNION ALL SELECT project_id, volume_type_id, volume_size FROM snapshots WHERE volume_type_id IS NOT NULL) AS u
    GROUP BY project_id, type_id;

-- +goose Down
DROP TABLE quota_usages;
DROP TABLE quota_classes;
DROP TABLE quotas;
