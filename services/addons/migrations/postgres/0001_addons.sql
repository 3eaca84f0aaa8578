-- +goose Up
-- Times are Unix microseconds (one representation on both engines); 0
-- stands for the zero time ("not set"). Credentials are sealed JSON
-- (secret.Box): never stored in plaintext.
CREATE TABLE addons (
    team_id        TEXT    NOT NULL,
    project_id     TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    internal_id    TEXT    NOT NULL UNIQUE, -- names its directory and workloads
    name           TEXT    NOT NULL,
    type           TEXT    NOT NULL,
    settings       TEXT    NOT NULL DEFAULT '{}', -- JSON Settings
    status         TEXT    NOT NULL,
    status_message TEXT    NOT NULL DEFAULT '',
    credentials    BYTEA   NOT NULL, -- sealed JSON Credentials
    created_at     BIGINT  NOT NULL DEFAULT 0,
    updated_at     BIGINT  NOT NULL DEFAULT 0,
    version        BIGINT  NOT NULL DEFAULT 1,
    PRIMARY KEY (team_id, project_id, id)
);

-- Backups outlive nothing: deleting an addon deletes them (their files are
-- removed by the service first).
CREATE TABLE addon_backups (
    team_id        TEXT    NOT NULL,
    project_id     TEXT    NOT NULL,
    addon_id       TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    backup_type    TEXT    NOT NULL,
    compression    TEXT    NOT NULL DEFAULT '',
    source_type    TEXT    NOT NULL DEFAULT '',
    status         TEXT    NOT NULL,
    status_message TEXT    NOT NULL DEFAULT '',
    size           BIGINT  NOT NULL DEFAULT 0,
    checksum       TEXT    NOT NULL DEFAULT '',
    addon_type     TEXT    NOT NULL DEFAULT '',
    addon_version  TEXT    NOT NULL DEFAULT '',
    destination_id TEXT    NOT NULL DEFAULT '',
    object_key     TEXT    NOT NULL DEFAULT '',
    schedule_id    TEXT    NOT NULL DEFAULT '',
    retained       BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at     BIGINT  NOT NULL DEFAULT 0,
    verification   TEXT    NOT NULL DEFAULT '{}', -- JSON Verification
    created_at     BIGINT  NOT NULL DEFAULT 0,
    completed_at   BIGINT  NOT NULL DEFAULT 0,
    version        BIGINT  NOT NULL DEFAULT 1,
    PRIMARY KEY (team_id, project_id, addon_id, id),
    FOREIGN KEY (team_id, project_id, addon_id) REFERENCES addons (team_id, project_id, id) ON DELETE CASCADE
);
-- Recovery and pruning look across all addons.
CREATE INDEX addon_backups_active ON addon_backups (status);
CREATE INDEX addon_backups_expiry ON addon_backups (expires_at) WHERE expires_at > 0;

-- A restore belongs to the addon restored into; the backup may be another
-- addon's (a fork or a source_addon_id restore), so it is named, not
-- referenced.
CREATE TABLE addon_restores (
    team_id           TEXT   NOT NULL,
    project_id        TEXT   NOT NULL,
    addon_id          TEXT   NOT NULL,
    id                TEXT   NOT NULL,
    backup_project_id TEXT   NOT NULL,
    backup_addon_id   TEXT   NOT NULL,
    backup_id         TEXT   NOT NULL,
    status            TEXT   NOT NULL,
    status_message    TEXT   NOT NULL DEFAULT '',
    created_at        BIGINT NOT NULL DEFAULT 0,
    completed_at      BIGINT NOT NULL DEFAULT 0,
    version           BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (team_id, project_id, addon_id, id),
    FOREIGN KEY (team_id, project_id, addon_id) REFERENCES addons (team_id, project_id, id) ON DELETE CASCADE
);
CREATE INDEX addon_restores_backup ON addon_restores (team_id, backup_project_id, backup_addon_id, backup_id);
CREATE INDEX addon_restores_active ON addon_restores (status);

-- One schedule per interval and backup type per addon (Northflank's rule).
CREATE TABLE addon_backup_schedules (
    team_id        TEXT    NOT NULL,
    project_id     TEXT    NOT NULL,
    addon_id       TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    interval_kind  TEXT    NOT NULL,
    backup_type    TEXT    NOT NULL,
    scheduling     TEXT    NOT NULL, -- JSON {minute, hour, day}
    compression    TEXT    NOT NULL DEFAULT '',
    destination_id TEXT    NOT NULL DEFAULT '',
    retention_days INTEGER NOT NULL,
    status         TEXT    NOT NULL DEFAULT 'ok',
    status_message TEXT    NOT NULL DEFAULT '',
    last_run_at    BIGINT  NOT NULL DEFAULT 0,
    next_run_at    BIGINT  NOT NULL DEFAULT 0,
    created_at     BIGINT  NOT NULL DEFAULT 0,
    updated_at     BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, project_id, addon_id, id),
    UNIQUE (team_id, project_id, addon_id, interval_kind, backup_type),
    FOREIGN KEY (team_id, project_id, addon_id) REFERENCES addons (team_id, project_id, id) ON DELETE CASCADE
);
CREATE INDEX addon_backup_schedules_due ON addon_backup_schedules (next_run_at);

-- Log lines of an addon's server (kind 'addon', ref ''), of a backup
-- (kind 'backup', ref = backup id) and of a restore (kind 'restore', ref =
-- restore id). seq orders lines of the same time.
CREATE TABLE addon_logs (
    seq        BIGSERIAL PRIMARY KEY,
    team_id    TEXT   NOT NULL,
    project_id TEXT   NOT NULL,
    addon_id   TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    ref        TEXT   NOT NULL DEFAULT '',
    container  TEXT   NOT NULL DEFAULT '',
    ts         BIGINT NOT NULL,
    stream     TEXT   NOT NULL DEFAULT '',
    text       TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX addon_logs_read ON addon_logs (team_id, project_id, addon_id, kind, ref, ts, seq);

-- +goose Down
DROP TABLE addon_logs;
DROP TABLE addon_backup_schedules;
DROP TABLE addon_restores;
DROP TABLE addon_backups;
DROP TABLE addons;
