-- +goose Up
-- Secret groups of projects and the team's global secrets. Times are Unix
-- microseconds (one representation on both engines). Values (variables
-- and files) are sealed JSON (secret.Box): never stored in plaintext.
-- Restrictions and addon links name no secret and stay readable JSON.
CREATE TABLE secret_groups (
    team_id      TEXT    NOT NULL,
    project_id   TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    description  TEXT    NOT NULL DEFAULT '',
    tags         TEXT    NOT NULL DEFAULT '[]', -- JSON array
    type         TEXT    NOT NULL,
    secret_type  TEXT    NOT NULL,
    priority     INTEGER NOT NULL DEFAULT 0,
    restrictions TEXT    NOT NULL DEFAULT '{}', -- JSON object
    addons       TEXT    NOT NULL DEFAULT '[]', -- JSON array of links
    data         BYTEA   NOT NULL,              -- sealed JSON {variables, files}
    created_at   BIGINT  NOT NULL DEFAULT 0,
    updated_at   BIGINT  NOT NULL DEFAULT 0,
    version      BIGINT  NOT NULL DEFAULT 1,
    PRIMARY KEY (team_id, project_id, id)
);

CREATE TABLE secret_globals (
    team_id     TEXT   NOT NULL,
    id          TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    description TEXT   NOT NULL DEFAULT '',
    type        TEXT   NOT NULL,
    data        BYTEA  NOT NULL, -- sealed JSON {variables, files}
    created_at  BIGINT NOT NULL DEFAULT 0,
    updated_at  BIGINT NOT NULL DEFAULT 0,
    version     BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (team_id, id)
);

-- +goose Down
DROP TABLE secret_globals;
DROP TABLE secret_groups;
