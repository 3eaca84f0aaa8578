-- +goose Up
-- Times are Unix microseconds (one representation on both engines); 0
-- stands for the zero time. A service's settings and a release's
-- deployable parts are sealed JSON (secret.Box): they hold the runtime
-- environment, never stored in plaintext.
CREATE TABLE services (
    team_id    TEXT   NOT NULL,
    project_id TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    spec       BYTEA  NOT NULL, -- sealed JSON of the rest of Service
    created_at BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0,
    version    BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (team_id, project_id, id)
);

CREATE TABLE service_releases (
    team_id    TEXT   NOT NULL,
    project_id TEXT   NOT NULL,
    service_id TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    cause      TEXT   NOT NULL DEFAULT '',
    rolled_back_from TEXT NOT NULL DEFAULT '',
    spec       BYTEA  NOT NULL, -- sealed JSON Deployable
    created_by TEXT   NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL DEFAULT 0,
    status     TEXT   NOT NULL,
    reason     TEXT   NOT NULL DEFAULT '',
    PRIMARY KEY (team_id, project_id, service_id, id),
    FOREIGN KEY (team_id, project_id, service_id) REFERENCES services (team_id, project_id, id) ON DELETE CASCADE
);

-- seq orders lines of the same time, increasing across the table.
CREATE TABLE service_logs (
    seq        BIGSERIAL PRIMARY KEY,
    team_id    TEXT   NOT NULL,
    project_id TEXT   NOT NULL,
    service_id TEXT   NOT NULL,
    container  TEXT   NOT NULL,
    ts         BIGINT NOT NULL,
    stream     TEXT   NOT NULL DEFAULT '',
    text       TEXT   NOT NULL DEFAULT '',
    size       BIGINT NOT NULL DEFAULT 0 -- bytes of text, for the cap
);
CREATE INDEX service_logs_read ON service_logs (team_id, project_id, service_id, ts, seq);
CREATE INDEX service_logs_trim ON service_logs (team_id, project_id, service_id, seq);

-- What a service's stored lines add up to, kept with every append so that
-- the cap is enforced without summing the table.
CREATE TABLE service_log_totals (
    team_id    TEXT   NOT NULL,
    project_id TEXT   NOT NULL,
    service_id TEXT   NOT NULL,
    lines      BIGINT NOT NULL DEFAULT 0,
    bytes      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, project_id, service_id)
);

-- How many lines of a workload's output its pump consumed, so that a
-- pump resuming after a restart of Slipway skips the lines the driver
-- replays. Keyed by workload, not instance: a restarted instance keeps its
-- name but runs a new workload whose output starts afresh.
CREATE TABLE service_log_offsets (
    team_id    TEXT   NOT NULL,
    project_id TEXT   NOT NULL,
    service_id TEXT   NOT NULL,
    workload   TEXT   NOT NULL,
    lines_read BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, project_id, service_id, workload)
);

-- +goose Down
DROP TABLE service_log_offsets;
DROP TABLE service_log_totals;
DROP TABLE service_logs;
DROP TABLE service_releases;
DROP TABLE services;
