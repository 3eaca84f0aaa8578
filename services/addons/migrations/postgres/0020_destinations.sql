-- +goose Up
-- A team's backup destinations. The credentials (access key, secret key,
-- bucket, region, endpoint) are one JSON document sealed with the
-- component's key (secret.Box, AES-256-GCM): the database never holds
-- them in the clear.
CREATE TABLE backup_destinations (
    team_id     TEXT NOT NULL,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    type        TEXT NOT NULL,
    prefix      TEXT NOT NULL DEFAULT '',
    credentials BYTEA NOT NULL,
    -- Unix microseconds: one representation on both engines.
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (team_id, id)
);

-- +goose Down
DROP TABLE backup_destinations;
