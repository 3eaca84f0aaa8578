-- +goose Up
-- Projects belong to a team; ids are unique within their team. Projects
-- created before teams existed go to the bootstrap team.
ALTER TABLE project_resources DROP CONSTRAINT project_resources_project_id_fkey;
ALTER TABLE projects ADD COLUMN team_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE projects ALTER COLUMN team_id DROP DEFAULT;
ALTER TABLE projects DROP CONSTRAINT projects_pkey;
ALTER TABLE projects ADD PRIMARY KEY (team_id, id);
ALTER TABLE project_resources ADD COLUMN team_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE project_resources ALTER COLUMN team_id DROP DEFAULT;
ALTER TABLE project_resources DROP CONSTRAINT project_resources_pkey;
ALTER TABLE project_resources ADD PRIMARY KEY (team_id, project_id, kind, id);
ALTER TABLE project_resources ADD FOREIGN KEY (team_id, project_id) REFERENCES projects (team_id, id) ON DELETE CASCADE;

-- +goose Down
ALTER TABLE project_resources DROP CONSTRAINT project_resources_team_id_project_id_fkey;
ALTER TABLE project_resources DROP CONSTRAINT project_resources_pkey;
ALTER TABLE project_resources DROP COLUMN team_id;
ALTER TABLE project_resources ADD PRIMARY KEY (project_id, kind, id);
ALTER TABLE projects DROP CONSTRAINT projects_pkey;
ALTER TABLE projects DROP COLUMN team_id;
ALTER TABLE projects ADD PRIMARY KEY (id);
ALTER TABLE project_resources ADD FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE;
