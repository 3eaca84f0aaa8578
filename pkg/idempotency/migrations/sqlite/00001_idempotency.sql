-- +goose Up
-- One row per (credential, key): scope is the SHA-256 of the credential,
-- never the credential itself. status is 0 while the first request runs
-- (its claim holds token until lease_until) and the response's HTTP
-- status once it is stored. Times are Unix microseconds, as in every
-- Slipway store.
CREATE TABLE idempotency_keys (
    scope        TEXT   NOT NULL,
    key          TEXT   NOT NULL,
    fingerprint  TEXT   NOT NULL,
    token        TEXT   NOT NULL,
    status       INTEGER NOT NULL DEFAULT 0,
    content_type TEXT   NOT NULL DEFAULT '',
    body         BLOB,
    lease_until  BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
-- The purge deletes by expiry.
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

-- +goose Down
DROP TABLE idempotency_keys;
