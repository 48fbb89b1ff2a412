#!/usr/bin/env bash
# The whole test suite, against real PostgreSQL and Valkey/Redis (started or
# installed here when needed). Usage: scripts/test.sh [extra nextest args]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/services.sh
source scripts/services.sh

ensure_build_deps
ensure_postgres
ensure_valkey
ensure_python_jose
echo "[test] PostgreSQL: ${LOCI_TEST_PG_ADMIN_URL%%@*}@... Valkey: $LOCI_TEST_VALKEY_URL" >&2

# Engines that cannot run on this machine are tested against their URL when
# one is given; say so instead of skipping silently.
for engine in QDRANT OPENSEARCH NEO4J; do
    var="LOCI_TEST_${engine}_URL"
    if [ -z "${!var:-}" ]; then
        echo "[test] $var not set: no $engine contract tests in this run (no $engine adapter exists yet either)" >&2
    fi
done

if cargo nextest --version >/dev/null 2>&1; then
    exec cargo nextest run --workspace --profile ci "$@"
else
    echo "[test] cargo-nextest not installed; using cargo test" >&2
    exec cargo test --workspace "$@"
fi
