#!/usr/bin/env bash
# Checks the invariants docs/ARCHITECTURE.md states that a command can check:
# which crate may depend on what, and what must never appear where. Run by
# .ci/run; each failure names the invariant it breaks.
set -euo pipefail
cd "$(dirname "$0")/.."
failed=0
fail() { echo "ARCHITECTURE: $*" >&2; failed=1; }

# The crates whose [dependencies] (not dev-dependencies) name package $1.
dependents() {
    local dep="$1" manifest
    for manifest in crates/*/Cargo.toml bins/*/Cargo.toml migration/Cargo.toml tests/Cargo.toml; do
        if awk -v dep="$dep" '
            /^\[/ { normal = ($0 == "[dependencies]") }
            normal && ($1 == dep || index($1, dep ".") == 1) { found = 1 }
            END { exit !found }' "$manifest"; then
            dirname "$manifest"
        fi
    done | sort | tr '\n' ' ' | sed 's/ $//'
}

# only DEP ALLOWED...: no other crate may depend on DEP.
only() {
    local dep="$1"; shift
    local allowed=" $* " crate
    for crate in $(dependents "$dep"); do
        case "$allowed" in *" $crate "*) ;; *) fail "$crate depends on $dep (only: $*)";; esac
    done
}

# Only the store crates talk to databases and engines.
only sea-orm crates/loci-stores
only sea-orm-migration migration
only fred crates/loci-stores
only tantivy crates/loci-index-embedded
only crc32fast crates/loci-index-embedded
only qdrant-client crates/loci-index-engines
only opensearch crates/loci-index-engines
only neo4rs crates/loci-index-engines
# Only loci-embed knows the model runtime.
only candle-core crates/loci-embed
only candle-nn crates/loci-embed
only candle-transformers crates/loci-embed
only tokenizers crates/loci-embed
# Only loci-code knows the parser and its grammars; only the domain uses loci-code.
for grammar in tree-sitter tree-sitter-rust tree-sitter-python tree-sitter-typescript tree-sitter-javascript tree-sitter-go tree-sitter-java; do
    only "$grammar" crates/loci-code
done
only loci-code crates/loci-domain
# The index ports and the embedded indexes know no relational store; the
# embedder knows no store at all.
only loci-stores crates/loci-domain crates/loci-app bins/loci tests
# Only the HTTP layer and the binaries (and the end-to-end harness) know actix-web; only loci-mcp knows rmcp.
only actix-web crates/loci-http bins/loci-api bins/loci-mcp tests
only rmcp bins/loci-mcp tests
# Only the composition root picks engines.
only loci-index-embedded crates/loci-app bins/loci
only loci-index-engines crates/loci-app
# loci-core and loci-settings depend on no other Loci crate.
for crate in crates/loci-core crates/loci-settings; do
    if grep -Eq '^loci-' "$crate/Cargo.toml"; then fail "$crate depends on another Loci crate"; fi
done

# The MCP server does not depend on the REST server.
if cargo tree -p loci-mcp -e normal --prefix none | grep -q '^loci-api '; then
    fail "loci-mcp depends on loci-api"
fi
# The domain's build includes no engine client, no HTTP and no MCP.
domain_tree="$(cargo tree -p loci-domain -e normal --prefix none)"
for forbidden in qdrant-client opensearch neo4rs tantivy actix-web rmcp; do
    if grep -q "^$forbidden " <<<"$domain_tree"; then fail "loci-domain's dependency tree contains $forbidden"; fi
done
# No sea-orm type above the store: not in the domain, the composition root, the HTTP layer or the binaries.
if grep -rn 'sea_orm' crates/loci-domain crates/loci-app crates/loci-http bins; then
    fail "sea_orm is named above the store (lines above)"
fi
# SQL stays in the store crates.
if grep -rnE '"(SELECT|INSERT INTO|UPDATE [a-z_"]+ SET|DELETE FROM) ' crates/loci-domain crates/loci-app crates/loci-http bins; then
    fail "SQL text above the store (lines above)"
fi

# Hygiene: every [dependencies] entry is named in its crate's sources (a
# dependency nobody uses only costs build time).
for manifest in crates/*/Cargo.toml bins/*/Cargo.toml migration/Cargo.toml tests/Cargo.toml; do
    dir="$(dirname "$manifest")"
    sources="$(ls -d "$dir/src" "$dir/api" "$dir"/*.rs 2>/dev/null || true)"
    for dep in $(awk '/^\[/ { normal = ($0 == "[dependencies]") } normal && /^[a-z]/ { split($1, a, "."); print a[1] }' "$manifest"); do
        # shellcheck disable=SC2086
        if ! grep -rqE "\b${dep//-/_}\b" $sources; then fail "$dir depends on $dep but never names it"; fi
    done
done

[ "$failed" = 0 ] && echo "architecture invariants hold"
exit "$failed"
