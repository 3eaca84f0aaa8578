-- +goose Up
-- Projects belong to a team; ids are unique within their team. Projects
-- created before teams existed go to the bootstrap team. SQLite cannot
-- change a primary key in place, so both tables are rebuilt.
CREATE TABLE projects_new (
    team_id     TEXT NOT NULL,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    color       TEXT NOT NULL DEFAULT '',
    region      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (team_id, id)
);
INSERT INTO projects_new SELECT 'default', id, name, description, color, region, created_at, updated_at, version FROM projects;
CREATE TABLE project_resources_new (
    team_id     TEXT NOT NULL,
    project_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    type        TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (team_id, project_id, kind, id),
    FOREIGN KEY (team_id, project_id) REFERENCES projects_new (team_id, id) ON DELETE CASCADE
);
INSERT INTO project_resources_new SELECT 'default', project_id, kind, id, name, description, type FROM project_resources;
DROP TABLE project_resources;
DROP TABLE projects;
ALTER TABLE projects_new RENAME TO projects;
ALTER TABLE project_resources_new RENAME TO project_resources;

-- +goose Down
CREATE TABLE projects_old (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    color       TEXT NOT NULL DEFAULT '',
    region      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1
);
INSERT INTO projects_old SELECT id, name, description, color, region, created_at, updated_at, version FROM projects;
CREATE TABLE project_resources_old (
    project_id  TEXT NOT NULL REFERENCES projects_old (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    type        TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (project_id, kind, id)
);
INSERT INTO project_resources_old SELECT project_id, kind, id, name, description, type FROM project_resources;
DROP TABLE project_resources;
DROP TABLE projects;
ALTER TABLE projects_old RENAME TO projects;
ALTER TABLE project_resources_old RENAME TO project_resources;
