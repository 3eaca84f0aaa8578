-- +goose Up
-- Notification integrations (Northflank's) and webhooks (the "your-app"
-- API's): where a team's lifecycle events are delivered. Times are Unix
-- microseconds, as in the other tables.
CREATE TABLE notification_integrations (
    team_id          TEXT    NOT NULL,
    id               TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    type             TEXT    NOT NULL,
    webhook          TEXT    NOT NULL,
    secret           BLOB,              -- sealed; NULL without a secret
    restricted       BOOLEAN NOT NULL DEFAULT FALSE,
    projects         TEXT    NOT NULL DEFAULT '[]', -- JSON array of project ids
    restrictions     TEXT    NOT NULL DEFAULT '{}', -- JSON, stored as given
    events           TEXT    NOT NULL DEFAULT '{}', -- JSON map of trigger keys
    failed_requests  BIGINT  NOT NULL DEFAULT 0,    -- failed attempts since the last success
    first_failed_at  BIGINT,                        -- the first of them
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    PRIMARY KEY (team_id, id)
);

CREATE TABLE app_webhooks (
    team_id    TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    url        TEXT   NOT NULL,
    events     TEXT   NOT NULL, -- JSON array of event names
    secret     BLOB  NOT NULL, -- sealed
    created_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, id)
);

-- One row per (event, integration or webhook); the body is rendered once
-- so every attempt sends the same bytes. Pending rows are claimed with a
-- lease (lease_owner, lease_until) so replicas never send one attempt
-- twice.
CREATE TABLE notification_deliveries (
    id               TEXT    PRIMARY KEY, -- webhook-id
    team_id          TEXT    NOT NULL,
    target_kind      TEXT    NOT NULL, -- 'integration' or 'webhook'
    target_id        TEXT    NOT NULL,
    event_id         TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    body             BLOB   NOT NULL,
    status           TEXT    NOT NULL, -- pending, succeeded, failed
    attempts         BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    retry_until      BIGINT  NOT NULL,
    lease_owner      TEXT    NOT NULL DEFAULT '',
    lease_until      BIGINT  NOT NULL DEFAULT 0,
    last_status_code BIGINT  NOT NULL DEFAULT 0,
    last_latency_ms  BIGINT  NOT NULL DEFAULT 0,
    last_error       TEXT    NOT NULL DEFAULT '',
    last_attempt_at  BIGINT,
    created_at       BIGINT  NOT NULL,
    UNIQUE (target_kind, team_id, target_id, event_id)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (status, next_attempt_at);
CREATE INDEX notification_deliveries_target ON notification_deliveries (team_id, target_kind, target_id, id);

-- +goose Down
DROP TABLE notification_deliveries;
DROP TABLE app_webhooks;
DROP TABLE notification_integrations;
