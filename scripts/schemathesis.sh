#!/usr/bin/env bash
# Property-based API testing with schemathesis (PyPI) against /openapi.json:
# starts `loci serve` (embedded profile, throwaway data directory), mints an
# admin token, and fails on any 5xx or any response that violates the schema.
# Usage: scripts/schemathesis.sh [MAX_EXAMPLES]   (default 25 per operation)
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-25}"

if ! python3 -c 'import schemathesis' >/dev/null 2>&1; then
    echo "[schemathesis] installing schemathesis from PyPI" >&2
    python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4,<5' >&2 \
        || python3 -m pip install --quiet --break-system-packages 'schemathesis>=4,<5' >&2
fi

# With the local model every search route can answer (without it the
# semantic route is a documented 503, which this check would count).
source scripts/throwaway-server.sh
token="$("$loci" token --user schemathesis --org schemathesis --roles admin --ttl 2h)"

python3 -m schemathesis.cli run "http://127.0.0.1:$port/openapi.json" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples "$examples" \
    --header "Authorization: Bearer $token" \
    --seed 20261125 \
    --no-color
