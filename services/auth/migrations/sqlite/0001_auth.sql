-- +goose Up
-- Times are Unix microseconds: one representation on both engines. Lists
-- (permissions, projects) are JSON arrays in TEXT for the same reason.

-- One row once the first start has bootstrapped the install; its primary
-- key makes two racing bootstraps conflict, so only one can commit.
CREATE TABLE install (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    -- argon2id PHC string; empty: no password sign-in.
    password_hash TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL
);

CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    plan        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE roles (
    team_id              TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    id                   TEXT NOT NULL,
    name                 TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    permissions          TEXT NOT NULL DEFAULT '[]',
    restricted           BOOLEAN NOT NULL DEFAULT FALSE,
    restriction_mode     TEXT NOT NULL DEFAULT 'in',
    restriction_projects TEXT NOT NULL DEFAULT '[]',
    builtin              BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    PRIMARY KEY (team_id, id)
);

CREATE TABLE members (
    team_id   TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id   TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id),
    -- A role a member holds cannot disappear under them.
    FOREIGN KEY (team_id, role_id) REFERENCES roles (team_id, id)
);

CREATE INDEX members_user ON members (user_id);

-- No foreign key to roles: a revoked token keeps its role id as history
-- and must not stop the role from being deleted.
CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    team_id      TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id      TEXT REFERENCES users (id) ON DELETE CASCADE,
    role_id      TEXT NOT NULL,
    projects     TEXT NOT NULL DEFAULT '[]',
    prefix       TEXT NOT NULL,
    -- Hex SHA-256 of the secret: the lookup key; the secret is never stored.
    secret_hash  TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE INDEX tokens_team ON tokens (team_id, id);
CREATE INDEX tokens_role ON tokens (team_id, role_id);

-- +goose Down
DROP TABLE tokens;
DROP TABLE members;
DROP TABLE roles;
DROP TABLE teams;
DROP TABLE users;
DROP TABLE install;
