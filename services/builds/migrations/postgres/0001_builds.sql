-- +goose Up
-- Times are Unix microseconds (one representation on both engines); 0
-- stands for the zero time ("not set"). A build's overrides may hold build
-- arguments that are secrets: they are sealed JSON (secret.Box). A build's
-- owner is a service or a job (kind 'service' or 'job'; service_id is the
-- job's id for a job): the two are kept by different services and their
-- ids may coincide, so every key has the kind.
CREATE TABLE builds (
    team_id         TEXT    NOT NULL,
    project_id      TEXT    NOT NULL,
    kind            TEXT    NOT NULL DEFAULT 'service',
    service_id      TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    branch          TEXT    NOT NULL DEFAULT '',
    pull_request    BIGINT  NOT NULL DEFAULT 0,
    sha             TEXT    NOT NULL DEFAULT '',
    status          TEXT    NOT NULL,
    message         TEXT    NOT NULL DEFAULT '',
    trigger_kind    TEXT    NOT NULL DEFAULT '',
    overrides       BYTEA   NOT NULL,              -- sealed JSON Overrides
    artifact        TEXT    NOT NULL DEFAULT '{}', -- JSON Artifact
    removed         BOOLEAN NOT NULL DEFAULT FALSE,
    owner           TEXT    NOT NULL DEFAULT '',
    abort_requested BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT  NOT NULL DEFAULT 0,
    started_at      BIGINT  NOT NULL DEFAULT 0,
    concluded_at    BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, project_id, kind, service_id, id)
);
-- The queue: the oldest QUEUED build first, across all services.
CREATE INDEX builds_queue ON builds (status, created_at);
-- Ids are unique across services (the queue and the abort signal name a
-- build by id alone).
CREATE UNIQUE INDEX builds_id ON builds (id);

CREATE TABLE build_logs (
    seq        BIGSERIAL PRIMARY KEY,
    team_id    TEXT    NOT NULL,
    project_id TEXT    NOT NULL,
    kind       TEXT    NOT NULL DEFAULT 'service',
    service_id TEXT    NOT NULL,
    build_id   TEXT    NOT NULL,
    ts         BIGINT  NOT NULL,
    stream     TEXT    NOT NULL DEFAULT 'stdout',
    text       TEXT    NOT NULL
);
CREATE INDEX build_logs_read ON build_logs (team_id, project_id, kind, service_id, ts, seq);
CREATE INDEX build_logs_build ON build_logs (build_id, seq);

-- How many lines each build wrote (stored or dropped past the cap).
CREATE TABLE build_log_counts (
    build_id TEXT   NOT NULL PRIMARY KEY,
    lines    BIGINT NOT NULL DEFAULT 0
);

-- A service's push webhook. The secret must be read back to check
-- signatures (HMAC), so it is sealed, not hashed.
CREATE TABLE build_webhooks (
    team_id    TEXT NOT NULL,
    project_id TEXT NOT NULL,
    kind       TEXT NOT NULL DEFAULT 'service',
    service_id TEXT NOT NULL,
    id         TEXT NOT NULL UNIQUE,
    secret     BYTEA NOT NULL,
    PRIMARY KEY (team_id, project_id, kind, service_id)
);

-- Delivery ids seen, to refuse a replayed event.
CREATE TABLE build_deliveries (
    webhook_id  TEXT   NOT NULL,
    delivery_id TEXT   NOT NULL,
    seen_at     BIGINT NOT NULL,
    PRIMARY KEY (webhook_id, delivery_id)
);
CREATE INDEX build_deliveries_age ON build_deliveries (seen_at);

-- The heads the poller last saw of a service's remote.
CREATE TABLE build_poll_heads (
    team_id    TEXT NOT NULL,
    project_id TEXT NOT NULL,
    kind       TEXT NOT NULL DEFAULT 'service',
    service_id TEXT NOT NULL,
    heads      TEXT NOT NULL DEFAULT '{}', -- JSON ref -> sha
    PRIMARY KEY (team_id, project_id, kind, service_id)
);

-- +goose Down
DROP TABLE build_poll_heads;
DROP TABLE build_deliveries;
DROP TABLE build_webhooks;
DROP TABLE build_log_counts;
DROP TABLE build_logs;
DROP TABLE builds;
