#!/usr/bin/env bash
# Property-based API testing with schemathesis (PyPI) against /openapi.json:
# starts `loci serve` (embedded profile, throwaway data directory), mints an
# admin token, and fails on any 5xx or any response that violates the schema.
# Usage: scripts/schemathesis.sh [MAX_EXAMPLES]   (default 25 per operation)
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-25}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loci-target}"

if ! python3 -c 'import schemathesis' >/dev/null 2>&1; then
    echo "[schemathesis] installing schemathesis from PyPI" >&2
    python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4,<5' >&2 \
        || python3 -m pip install --quiet --break-system-packages 'schemathesis>=4,<5' >&2
fi

cargo build --quiet --bin loci
loci="$CARGO_TARGET_DIR/debug/loci"
data="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT

export LOCI__DATA_DIR="$data" LOCI__SERVER__PORT="$port" LOCI__TELEMETRY__LOG_LEVEL=warn
# With the local model every search route can answer (without it the
# semantic route is a documented 503, which this check would count).
model_cache="$HOME/.cache/loci-models/all-MiniLM-L6-v2"
bash scripts/fetch-model.sh "$model_cache" >&2
export LOCI__EMBEDDINGS__MODEL_DIR="$model_cache"
"$loci" serve > "$data/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/health/live" >/dev/null 2>&1 && break
    sleep 0.1
done
token="$("$loci" token --user schemathesis --org schemathesis --roles admin --ttl 2h)"

python3 -m schemathesis.cli run "http://127.0.0.1:$port/openapi.json" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples "$examples" \
    --header "Authorization: Bearer $token" \
    --seed 20261125 \
    --no-color
