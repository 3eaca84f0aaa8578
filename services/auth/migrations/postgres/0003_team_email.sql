-- +goose Up
-- A team's billing and contact email (Northflank's "email" of a new team);
-- '' when none was given.
ALTER TABLE teams ADD COLUMN email TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE teams DROP COLUMN email;
