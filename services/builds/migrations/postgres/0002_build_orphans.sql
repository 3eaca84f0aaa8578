-- +goose Up
-- Artifacts of builds whose service (or project) was deleted while a
-- release still ran them (another service deploying that build): removed
-- once nothing runs them. Times are Unix microseconds.
CREATE TABLE build_orphans (
    build_id TEXT   NOT NULL PRIMARY KEY,
    artifact TEXT   NOT NULL, -- JSON Artifact
    since    BIGINT NOT NULL
);

-- +goose Down
DROP TABLE build_orphans;
