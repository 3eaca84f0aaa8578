-- +goose Up
-- seq orders publication; identity values only ever grow. event_id is
-- unique so that enqueuing the same event twice fails loudly.
CREATE TABLE event_outbox (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   TEXT        NOT NULL UNIQUE,
    subject    TEXT        NOT NULL,
    payload    BYTEA       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    sent_at    TIMESTAMPTZ
);
-- The relay only ever scans unsent rows and the purge only sent ones;
-- partial indexes keep both cheap however the table is split.
CREATE INDEX event_outbox_unsent ON event_outbox (seq) WHERE sent_at IS NULL;
CREATE INDEX event_outbox_sent ON event_outbox (sent_at) WHERE sent_at IS NOT NULL;

CREATE TABLE event_inbox (
    consumer     TEXT        NOT NULL,
    event_id     TEXT        NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX event_inbox_processed_at ON event_inbox (processed_at);

-- +goose Down
DROP TABLE event_inbox;
DROP TABLE event_outbox;
