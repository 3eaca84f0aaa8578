-- +goose Up
-- A job that builds from git: its repository, build settings, credentials
-- and build arguments, as one sealed JSON Build (secret.Box; credentials
-- and build arguments are secrets). NULL: the job runs an image or a
-- command.
ALTER TABLE jobs ADD COLUMN build BYTEA;

-- The successful builds of jobs, as the builds component announced them
-- (builds.build.succeeded of kind job); a run of a job that builds from
-- git runs the newest of its branch. A deleted build's row goes.
CREATE TABLE job_builds (
    team_id      TEXT   NOT NULL,
    project_id   TEXT   NOT NULL,
    job_id       TEXT   NOT NULL,
    id           TEXT   NOT NULL,
    branch       TEXT   NOT NULL DEFAULT '',
    sha          TEXT   NOT NULL DEFAULT '',
    image        TEXT   NOT NULL DEFAULT '',
    path         TEXT   NOT NULL DEFAULT '',
    command      TEXT   NOT NULL DEFAULT '[]', -- JSON array
    concluded_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, project_id, job_id, id)
);
CREATE INDEX job_builds_latest ON job_builds (team_id, project_id, job_id, branch, concluded_at);

-- The successful builds of build and combined services (kind service),
-- which jobs with deployment.internal run.
CREATE TABLE job_service_builds (
    team_id      TEXT   NOT NULL,
    project_id   TEXT   NOT NULL,
    service_id   TEXT   NOT NULL,
    id           TEXT   NOT NULL,
    branch       TEXT   NOT NULL DEFAULT '',
    sha          TEXT   NOT NULL DEFAULT '',
    image        TEXT   NOT NULL DEFAULT '',
    path         TEXT   NOT NULL DEFAULT '',
    command      TEXT   NOT NULL DEFAULT '[]', -- JSON array
    concluded_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, project_id, service_id, id)
);
CREATE INDEX job_service_builds_latest ON job_service_builds (team_id, project_id, service_id, branch, concluded_at);

-- +goose Down
DROP TABLE job_service_builds;
DROP TABLE job_builds;
ALTER TABLE jobs DROP COLUMN build;
