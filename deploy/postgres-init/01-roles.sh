#!/usr/bin/env bash
# Roles for Loci, run once by the postgres image on an empty data directory
# (/docker-entrypoint-initdb.d), as the bootstrap superuser, in $POSTGRES_DB.
#
#   owner (LOCI_DB_OWNER_USER, default loci_owner): owns the database and the
#     `public` schema, so every table, sequence and function the migrations
#     create. `loci migrate up` and the backup/restore commands connect as it
#     (database.migration_url). BYPASSRLS: a backup must read every tenant's
#     rows; the migrations already escape the (FORCEd) policies as owner.
#     Not a superuser, cannot create roles or databases.
#
#   app (LOCI_DB_APP_USER, default loci_app): what `loci serve` connects as
#     (database.url). Not a superuser, NOBYPASSRLS, owns nothing: every
#     tenant-table query goes through the `tenant_isolation` row-level
#     security policies (the server refuses to start as a role that bypasses
#     them, see Database::ensure_role_is_subject_to_rls). It gets DML only:
#     SELECT/INSERT/UPDATE/DELETE on tables and USAGE/SELECT on sequences,
#     through default privileges on whatever the owner creates later.
#     No TRUNCATE: it ignores row-level security (the server clears an
#     org's rows with DELETE under the policy; the all-org TRUNCATE of the
#     embedded graph store is for owner-level maintenance such as restore).
#
# Passwords come from the environment (deploy/.env), never from this file.
# Use URL-safe passwords (e.g. `openssl rand -hex 32`): they go into URLs.
set -euo pipefail

: "${LOCI_DB_OWNER_PASSWORD:?LOCI_DB_OWNER_PASSWORD must be set}"
: "${LOCI_DB_APP_PASSWORD:?LOCI_DB_APP_PASSWORD must be set}"
owner="${LOCI_DB_OWNER_USER:-loci_owner}"
app="${LOCI_DB_APP_USER:-loci_app}"
db="${POSTGRES_DB:-postgres}"

# psql variables are quoted by psql itself (:"ident", :'literal'), so names
# and passwords cannot break out of the statements.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "$db" \
    -v owner="$owner" -v app="$app" -v db="$db" \
    -v owner_password="$LOCI_DB_OWNER_PASSWORD" -v app_password="$LOCI_DB_APP_PASSWORD" <<'SQL'
CREATE ROLE :"owner" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS
    PASSWORD :'owner_password';
CREATE ROLE :"app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'app_password';

-- The owner owns the database and its public schema; nobody else may create
-- objects there.
ALTER DATABASE :"db" OWNER TO :"owner";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"app";
ALTER SCHEMA public OWNER TO :"owner";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app";

-- DML on everything the owner creates from now on (the migrations) ...
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app";
-- (trigger functions keep PostgreSQL's default EXECUTE for PUBLIC.)

-- ... and on anything that already exists (none on a fresh cluster).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app";
SQL

echo "01-roles.sh: created owner role \"$owner\" and application role \"$app\" in database \"$db\""
