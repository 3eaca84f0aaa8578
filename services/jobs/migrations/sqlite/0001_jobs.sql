-- +goose Up
-- Times are Unix microseconds (one representation on both engines); 0
-- stands for the zero time ("not set"). Environments are sealed JSON
-- (secret.Box): never stored in plaintext.
CREATE TABLE jobs (
    team_id                 TEXT    NOT NULL,
    project_id              TEXT    NOT NULL,
    id                      TEXT    NOT NULL,
    name                    TEXT    NOT NULL,
    description             TEXT    NOT NULL DEFAULT '',
    tags                    TEXT    NOT NULL DEFAULT '[]', -- JSON array
    type                    TEXT    NOT NULL,
    plan                    TEXT    NOT NULL DEFAULT '',
    deployment              TEXT    NOT NULL DEFAULT '{}', -- JSON object
    env                     BLOB    NOT NULL,              -- sealed JSON object
    backoff_limit           INTEGER NOT NULL DEFAULT 0,
    active_deadline_seconds BIGINT  NOT NULL DEFAULT 0,
    run_on_source_change    TEXT    NOT NULL DEFAULT '',
    schedule                TEXT    NOT NULL DEFAULT '',
    concurrency_policy      TEXT    NOT NULL DEFAULT '',
    suspended               BOOLEAN NOT NULL DEFAULT 0,
    next_run_at             BIGINT  NOT NULL DEFAULT 0,
    created_at              BIGINT  NOT NULL DEFAULT 0,
    updated_at              BIGINT  NOT NULL DEFAULT 0,
    version                 BIGINT  NOT NULL DEFAULT 1,
    PRIMARY KEY (team_id, project_id, id)
);
-- The scheduler's scan for due cron jobs, across all teams.
CREATE INDEX jobs_due ON jobs (next_run_at) WHERE next_run_at > 0;

-- The foreign key makes a run created concurrently with its job's deletion
-- fail instead of outliving the job.
CREATE TABLE job_runs (
    team_id       TEXT    NOT NULL,
    project_id    TEXT    NOT NULL,
    job_id        TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    name          TEXT    NOT NULL DEFAULT '',
    status        TEXT    NOT NULL,
    reason        TEXT    NOT NULL DEFAULT '',
    spec          BLOB    NOT NULL, -- sealed JSON RunSpec
    backoff_limit INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    succeeded     INTEGER NOT NULL DEFAULT 0,
    active        BOOLEAN NOT NULL DEFAULT 0,
    workload_id   TEXT    NOT NULL DEFAULT '',
    exit_code     INTEGER,          -- NULL until an attempt exits
    deadline      BIGINT  NOT NULL DEFAULT 0,
    retry_at      BIGINT  NOT NULL DEFAULT 0,
    owner         TEXT    NOT NULL DEFAULT '',
    lease_until   BIGINT  NOT NULL DEFAULT 0,
    started_at    BIGINT  NOT NULL DEFAULT 0,
    concluded_at  BIGINT  NOT NULL DEFAULT 0,
    version       BIGINT  NOT NULL DEFAULT 1,
    PRIMARY KEY (team_id, project_id, job_id, id),
    FOREIGN KEY (team_id, project_id, job_id) REFERENCES jobs (team_id, project_id, id) ON DELETE CASCADE
);
-- Supervision only looks at unconcluded runs: a replica's own (and lease
-- renewals), and those whose lease expired.
CREATE INDEX job_runs_running_owner ON job_runs (owner) WHERE status = 'RUNNING';
CREATE INDEX job_runs_running_lease ON job_runs (lease_until) WHERE status = 'RUNNING';

-- seq orders lines of the same time, increasing across the table.
CREATE TABLE job_logs (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    team_id    TEXT   NOT NULL,
    project_id TEXT   NOT NULL,
    job_id     TEXT   NOT NULL,
    run_id     TEXT   NOT NULL,
    container  TEXT   NOT NULL,
    ts         BIGINT NOT NULL,
    stream     TEXT   NOT NULL DEFAULT '',
    text       TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX job_logs_read ON job_logs (team_id, project_id, job_id, ts, seq);

-- +goose Down
DROP TABLE job_logs;
DROP TABLE job_runs;
DROP TABLE jobs;
