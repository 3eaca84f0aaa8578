-- +goose Up
-- Leases for work one replica does at a time (the poller): one row per
-- lease, its holder and until when (Unix microseconds). A replica takes
-- a lease nobody holds or whose holder's time ran out, and renews its
-- own, with one conditional upsert.
CREATE TABLE build_leases (
    name  TEXT   NOT NULL PRIMARY KEY,
    owner TEXT   NOT NULL,
    until BIGINT NOT NULL
);

-- +goose Down
DROP TABLE build_leases;
