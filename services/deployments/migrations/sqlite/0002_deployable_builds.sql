-- +goose Up
-- The builds of build and combined services that services can deploy,
-- learnt from the builds component's builds.build.succeeded events;
-- builds.build.deleted (the artifact was removed) marks a row deleted
-- rather than removing it, so that a late or redelivered succeeded event
-- cannot bring a removed artifact back. Times are Unix microseconds.
CREATE TABLE deployable_builds (
    team_id      TEXT    NOT NULL,
    project_id   TEXT    NOT NULL,
    service_id   TEXT    NOT NULL, -- the build or combined service that built it
    id           TEXT    NOT NULL, -- build id
    branch       TEXT    NOT NULL DEFAULT '',
    sha          TEXT    NOT NULL DEFAULT '',
    image        TEXT    NOT NULL DEFAULT '', -- docker driver artifact
    path         TEXT    NOT NULL DEFAULT '', -- process driver artifact: the app tree
    command      TEXT    NOT NULL DEFAULT '', -- JSON argv of the artifact's start command
    concluded_at BIGINT  NOT NULL DEFAULT 0,
    deleted      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, project_id, service_id, id)
);
CREATE INDEX deployable_builds_branch ON deployable_builds (team_id, project_id, service_id, branch, concluded_at);
CREATE INDEX deployable_builds_sha ON deployable_builds (team_id, project_id, service_id, sha);

-- +goose Down
DROP TABLE deployable_builds;
