-- +goose Up
-- OAuth 2.0 authorization server state (services/auth/oauth). Times are
-- Unix microseconds and lists are JSON arrays in TEXT, as in the auth
-- schema, so one SQL code path serves both engines.

-- Registered clients. secret_hash is secret.Hash (SHA-256 hex) of a
-- generated high-entropy secret; empty for public clients.
CREATE TABLE oauth_clients (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL DEFAULT '',
    secret_hash          TEXT NOT NULL DEFAULT '',
    public               BOOLEAN NOT NULL DEFAULT FALSE,
    redirect_uris        TEXT NOT NULL DEFAULT '[]',
    grant_types          TEXT NOT NULL DEFAULT '[]',
    response_types       TEXT NOT NULL DEFAULT '[]',
    scopes               TEXT NOT NULL DEFAULT '[]',
    team_id              TEXT NOT NULL,
    owner_id             TEXT NOT NULL DEFAULT '',
    allow_password_grant BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           BIGINT NOT NULL
);

CREATE INDEX oauth_clients_team ON oauth_clients (team_id);

-- What fosite stores by token signature: kind is 'code' (authorization
-- code), 'pkce' (PKCE challenge of a code), 'access' or 'refresh'.
-- request is the JSON of the fosite request (client, scopes, form, session);
-- request_id groups every token of one grant, so revoking the grant (or
-- detecting refresh-token reuse) reaches the whole chain.
CREATE TABLE oauth_sessions (
    kind         TEXT NOT NULL,
    signature    TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    subject      TEXT NOT NULL DEFAULT '',
    active       BOOLEAN NOT NULL DEFAULT TRUE,
    request      TEXT NOT NULL,
    access_signature TEXT NOT NULL DEFAULT '',
    requested_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, signature)
);

CREATE INDEX oauth_sessions_request ON oauth_sessions (request_id, kind);
CREATE INDEX oauth_sessions_expiry ON oauth_sessions (expires_at);

-- JWT ids of client assertions already seen (replay protection).
CREATE TABLE oauth_jtis (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE oauth_jtis;
DROP TABLE oauth_sessions;
DROP TABLE oauth_clients;
