# Sourced by scripts/test.sh (which .ci/run runs): makes sure PostgreSQL and
# Valkey/Redis are installed and running on this machine, and exports the URLs
# the tests use. Idempotent; installs with apt-get only when a binary is missing.

log() { printf '[services] %s\n' "$*" >&2; }

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        log "cannot install $* without root; install it and re-run"
        return 1
    fi
    if [ -z "${LOCI_APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        LOCI_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

ensure_postgres() {
    if ! command -v pg_isready >/dev/null 2>&1 || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        log "PostgreSQL not installed; installing"
        apt_install postgresql postgresql-client
    fi
    if ! pg_ready; then
        log "starting PostgreSQL"
        for version in $(ls /etc/postgresql); do
            pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
        done
        for _ in $(seq 1 60); do pg_ready && break; sleep 0.5; done
    fi
    pg_ready || { log "PostgreSQL did not become ready on 127.0.0.1:5432"; return 1; }

    # The tests connect as a superuser to create their role and databases.
    # Trust auth (this machine's default) needs no password; a stock Debian
    # install needs one, which we set through the local socket.
    local url="${LOCI_TEST_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
    if ! psql "$url" -qtAc 'select 1' >/dev/null 2>&1; then
        url="postgres://postgres:postgres@127.0.0.1:5432/postgres"
        if ! psql "$url" -qtAc 'select 1' >/dev/null 2>&1; then
            log "setting a password for the postgres role (local socket, peer auth)"
            su postgres -c "psql -qc \"ALTER ROLE postgres PASSWORD 'postgres'\"" >&2
        fi
    fi
    psql "$url" -qtAc 'select 1' >/dev/null || { log "cannot connect to PostgreSQL as a superuser"; return 1; }
    export LOCI_TEST_PG_ADMIN_URL="$url"

    # Drop databases left behind by earlier test runs.
    local stale
    stale=$(psql "$url" -qtAc "select datname from pg_database where datname like 'loci_test_%'")
    for db in $stale; do psql "$url" -qc "drop database if exists \"$db\"" >/dev/null 2>&1 || true; done
}

valkey_ready() {
    redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG
}

ensure_valkey() {
    if ! command -v redis-server >/dev/null 2>&1 && ! command -v valkey-server >/dev/null 2>&1; then
        log "Redis/Valkey not installed; installing redis-server"
        apt_install redis-server
    fi
    if ! valkey_ready; then
        log "starting Redis on 127.0.0.1:6379"
        mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
        local server
        server=$(command -v valkey-server || command -v redis-server)
        "$server" --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
            --dir /var/lib/redis --logfile /var/log/redis/ci.log >&2
        for _ in $(seq 1 40); do valkey_ready && break; sleep 0.25; done
    fi
    valkey_ready || { log "Valkey/Redis did not answer PING on 127.0.0.1:6379"; return 1; }
    export LOCI_TEST_VALKEY_URL="${LOCI_TEST_VALKEY_URL:-redis://127.0.0.1:6379}"
}

# The interoperability tests mint tokens with Python's PyJWT (an independent
# JOSE implementation), from its own pinned virtual environment
# (scripts/python-env.sh); the tests run $LOCI_TEST_PYTHON.
ensure_python_jose() {
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        log "python3 with venv not installed; installing"
        apt_install python3 python3-venv
    fi
    # shellcheck source=scripts/python-env.sh
    source "$(dirname "${BASH_SOURCE[0]}")/python-env.sh"
    python_env pyjwt
    "$py" -c 'import jwt, cryptography' || { log "PyJWT is missing from $py"; return 1; }
    export LOCI_TEST_PYTHON="$py"
}

# josekit links OpenSSL.
ensure_build_deps() {
    if ! pkg-config --exists openssl 2>/dev/null; then
        log "OpenSSL headers not found; installing libssl-dev and pkg-config"
        apt_install libssl-dev pkg-config
    fi
}

# universal-ctags: the ground truth code intelligence's definitions are
# checked against (loci-code's tests, `loci bench code --ctags`).
ensure_ctags() {
    if ! ctags --version 2>/dev/null | grep -q "Universal Ctags"; then
        log "universal-ctags not installed; installing"
        apt_install universal-ctags
    fi
}

# Neo4j's Cypher front end (parser and semantic analysis) as an npm package:
# the Neo4j adapter's statements are linted with it, as no Neo4j server runs
# here. Pinned; installed once under ~/.cache.
CYPHER_LINT_PACKAGE="@neo4j-cypher/language-support@2.0.0-next.38"
ensure_cypher_lint() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        log "node/npm not installed; installing"
        apt_install nodejs npm
    fi
    local dir="$HOME/.cache/loci-cypher-lint"
    if [ ! -f "$dir/node_modules/@neo4j-cypher/language-support/package.json" ]; then
        log "installing $CYPHER_LINT_PACKAGE into $dir"
        mkdir -p "$dir"
        npm install --silent --no-audit --no-fund --prefix "$dir" "$CYPHER_LINT_PACKAGE" >&2
    fi
    export LOCI_CYPHER_LINT="$dir"
}
