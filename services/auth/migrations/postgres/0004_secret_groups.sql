-- +goose Up
-- Secret groups brought permissions of Slipway's own (pkg/permissions):
-- "Project > SecretGroups > General > Read" and "Account > SecretGroups >
-- General > Read" (names and settings), "Project > Secrets > General >
-- Create|Delete|Read|Update" and "Account > Secrets > General > ..."
-- (values and changes). Every team's built-in roles get what
-- pkg/permissions.Builtin gives them now: admin all ten; developer the
-- project ones and the two account reads; viewer the two SecretGroups
-- reads. Permissions are a sorted JSON array written by Go's
-- encoding/json (">" is \u003e): each REPLACE inserts the new elements, in
-- order, right before the element that follows them in every copy of the
-- role, so the array stays sorted. A row that already has them (a team
-- created since) is left alone, and custom roles keep what their owners
-- chose.
UPDATE roles SET permissions = REPLACE(REPLACE(permissions,
        '"Project \u003e Secrets \u003e Jobs \u003e Read"',
        '"Project \u003e SecretGroups \u003e General \u003e Read","Project \u003e Secrets \u003e General \u003e Create","Project \u003e Secrets \u003e General \u003e Delete","Project \u003e Secrets \u003e General \u003e Read","Project \u003e Secrets \u003e General \u003e Update","Project \u003e Secrets \u003e Jobs \u003e Read"'),
        '"Account \u003e Sinks \u003e General \u003e Create"',
        '"Account \u003e SecretGroups \u003e General \u003e Read","Account \u003e Secrets \u003e General \u003e Create","Account \u003e Secrets \u003e General \u003e Delete","Account \u003e Secrets \u003e General \u003e Read","Account \u003e Secrets \u003e General \u003e Update","Account \u003e Sinks \u003e General \u003e Create"')
WHERE builtin = TRUE AND id = 'admin' AND permissions NOT LIKE '%SecretGroups%';

UPDATE roles SET permissions = REPLACE(REPLACE(permissions,
        '"Project \u003e Secrets \u003e Jobs \u003e Read"',
        '"Project \u003e SecretGroups \u003e General \u003e Read","Project \u003e Secrets \u003e General \u003e Create","Project \u003e Secrets \u003e General \u003e Delete","Project \u003e Secrets \u003e General \u003e Read","Project \u003e Secrets \u003e General \u003e Update","Project \u003e Secrets \u003e Jobs \u003e Read"'),
        '"Account \u003e Sinks \u003e General \u003e Read"',
        '"Account \u003e SecretGroups \u003e General \u003e Read","Account \u003e Secrets \u003e General \u003e Read","Account \u003e Sinks \u003e General \u003e Read"')
WHERE builtin = TRUE AND id = 'developer' AND permissions NOT LIKE '%SecretGroups%';

UPDATE roles SET permissions = REPLACE(REPLACE(permissions,
        '"Project \u003e Services \u003e Deployment \u003e View Instances"',
        '"Project \u003e SecretGroups \u003e General \u003e Read","Project \u003e Services \u003e Deployment \u003e View Instances"'),
        '"Account \u003e Sinks \u003e General \u003e Read"',
        '"Account \u003e SecretGroups \u003e General \u003e Read","Account \u003e Sinks \u003e General \u003e Read"')
WHERE builtin = TRUE AND id = 'viewer' AND permissions NOT LIKE '%SecretGroups%';

-- +goose Down
-- Nothing to undo: the permissions name nothing an older release could
-- misread, and taking them away would lock admins out of secret groups.
SELECT 1;
