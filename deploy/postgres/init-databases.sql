-- One PostgreSQL database per Slipway component with a database
-- (database-per-service; the gateway keeps Idempotency-Key records in its own).
--
-- Mounted into /docker-entrypoint-initdb.d by docker-compose.yml. The postgres
-- image runs it (with psql, as POSTGRES_USER, who then owns the databases) only
-- when it initialises an EMPTY data volume. The statements are idempotent, so
-- after adding a database here an existing stack can be brought up to date
-- without wiping its volume:
--
--   docker compose exec postgres psql -U slipway -d slipway \
--     -f /docker-entrypoint-initdb.d/10-init-databases.sql
--
-- (`docker compose down -v` followed by `up` also works, but drops all data.)
--
-- Every postgres:// URL in docker-compose.yml must name a database created
-- here; deploy/deploy_test.go checks that. Schemas are not created here:
-- `slipway migrate` (the compose `migrate` service) owns them.
--
-- CREATE DATABASE has no IF NOT EXISTS, hence the SELECT ... \gexec form: psql
-- executes the generated statement only when the database is missing.

SELECT 'CREATE DATABASE auth'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'auth')\gexec

SELECT 'CREATE DATABASE projects'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'projects')\gexec

SELECT 'CREATE DATABASE jobs'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'jobs')\gexec

SELECT 'CREATE DATABASE deployments'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'deployments')\gexec

SELECT 'CREATE DATABASE builds'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'builds')\gexec

SELECT 'CREATE DATABASE addons'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'addons')\gexec

SELECT 'CREATE DATABASE gateway'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'gateway')\gexec
