#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of what parses untrusted
# bytes: bearer tokens, DPoP proofs and their JWKs, JSON bodies with the
# depth limit, list query strings, uploaded backup archives, MCP JSON-RPC
# messages (fuzz/fuzz_targets). Each target runs SECONDS (default 20) from
# the committed seed corpus (fuzz/corpus) plus what earlier runs found
# (~/.cache/loci-fuzz/corpus); any crash fails the run and is kept under
# ~/.cache/loci-fuzz/artifacts. Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(bearer_token dpop_proof json_body query_string backup_archive mcp_message)
fi

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "[fuzz] skipped: no nightly toolchain (libFuzzer instrumentation needs one)" >&2
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "[fuzz] installing cargo-fuzz" >&2
    cargo +nightly install cargo-fuzz --version 0.13.2 --locked
fi

# Its own target directory: instrumented builds share nothing with the main one.
export CARGO_TARGET_DIR="${LOCI_FUZZ_TARGET_DIR:-$HOME/.cache/loci-fuzz/target}"
work="${LOCI_FUZZ_WORK:-$HOME/.cache/loci-fuzz}"
cd fuzz
# No sanitizer: the code is safe Rust (panics, overflows, unbounded
# recursion and timeouts are what is hunted); debug assertions on.
cargo +nightly fuzz build --sanitizer none --debug-assertions 2>&1 | tail -n 3 >&2 || {
    echo "[fuzz] build failed" >&2
    exit 1
}
# JWS-shaped seeds, made here (a committed token would trip the secret scan).
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
seed() { # seed TARGET NAME HEADER-JSON CLAIMS-JSON
    mkdir -p "$work/corpus/$1"
    printf '%s.%s.%s' "$(printf '%s' "$3" | b64url)" "$(printf '%s' "$4" | b64url)" "$(printf 'sig' | b64url)" \
        >"$work/corpus/$1/$2"
}
seed bearer_token es256 '{"alg":"ES256","typ":"JWT","kid":"fuzz"}' \
    '{"iss":"https://idp.loci.test/","aud":"loci-api","sub":"a","org_id":"acme","exp":4102444800,"iat":1}'
seed bearer_token none '{"alg":"none"}' '{}'
seed dpop_proof proof '{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}}' \
    '{"htm":"POST","htu":"https://api.loci.test/api/v1/memories","iat":1,"jti":"j"}'

status=0
for target in "${targets[@]}"; do
    mkdir -p "$work/corpus/$target" "$work/artifacts/$target"
    log="$work/$target.log"
    if cargo +nightly fuzz run --sanitizer none --debug-assertions "$target" "$work/corpus/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$work/artifacts/$target/" >"$log" 2>&1; then
        summary=$(grep -E '^(#[0-9]+|Done)' "$log" | tail -n 1)
        echo "[fuzz] $target: ok ($summary)" >&2
    else
        echo "[fuzz] $target: FAILED; log $log, inputs $work/artifacts/$target/" >&2
        tail -n 30 "$log" >&2
        status=1
    fi
done
exit $status
