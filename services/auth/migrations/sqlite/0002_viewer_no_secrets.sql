-- +goose Up
-- The built-in viewer role reads configuration, not secret values: every
-- team's copy of it loses "Project > Secrets > Jobs > Read" and
-- "Project > Secrets > Services > Read" (pkg/permissions.Builtin no longer
-- gives them). Permissions are a sorted JSON array written by Go's
-- encoding/json, which spells ">" as \u003e; each REPLACE removes one
-- element wherever it stands (inside, first, or alone). Custom roles keep
-- what their owners chose.
UPDATE roles SET
    permissions = REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(permissions,
        ',"Project \u003e Secrets \u003e Jobs \u003e Read"', ''),
        '"Project \u003e Secrets \u003e Jobs \u003e Read",', ''),
        '"Project \u003e Secrets \u003e Jobs \u003e Read"', ''),
        ',"Project \u003e Secrets \u003e Services \u003e Read"', ''),
        '"Project \u003e Secrets \u003e Services \u003e Read",', ''),
        '"Project \u003e Secrets \u003e Services \u003e Read"', ''),
    description = 'Read-only access to configuration; no secret values.'
WHERE builtin = TRUE AND id = 'viewer';

-- +goose Down
-- Nothing to undo: giving viewers secret values back is not a downgrade
-- step anyone should get by accident.
SELECT 1;
