#!/usr/bin/env bash
# Supply-chain checks (deny.toml at the repository root):
#   1. cargo deny --all-features check licenses bans sources
#      licences on the allow-list only, no `*` requirement, crates.io only;
#   2. cargo deny check advisories (RustSec: vulnerabilities, unmaintained,
#      unsound, yanked), only when the advisory database can be fetched;
#      otherwise it prints "skipped: no advisory database (advisories)";
#   3. scripts/secret-scan.sh (detect-secrets over the tracked tree).
# Installs cargo-deny with `cargo install cargo-deny --locked` when missing.
# cargo-deny reads `cargo metadata`; it compiles nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

if ! cargo deny --version >/dev/null 2>&1; then
    echo "== installing cargo-deny (cargo install cargo-deny --locked)"
    cargo install cargo-deny --locked
fi
cargo deny --version

echo "== cargo deny: licenses, bans, sources"
cargo deny --all-features check licenses bans sources

echo "== cargo deny: advisories"
# A short, bounded fetch: without network the RustSec database cannot be had,
# and the check is skipped (said so) rather than failed.
if timeout "${LOCI_ADVISORY_FETCH_TIMEOUT:-90}" cargo deny fetch db >/dev/null 2>&1; then
    cargo deny --offline check advisories
else
    echo "skipped: no advisory database (advisories)"
fi

echo "== secret scan (scripts/secret-scan.sh)"
bash scripts/secret-scan.sh
