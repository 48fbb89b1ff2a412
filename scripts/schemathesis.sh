#!/usr/bin/env bash
# Property-based API testing with schemathesis (pinned, in its own virtual
# environment: scripts/python-env.sh) against /openapi.json: starts
# `loci serve` (embedded profile, throwaway data directory, the local model),
# mints an admin token, seeds one memory (its id and its app's id are the
# existing data the {id} routes are tested with), then runs every phase in
# positive and negative mode with every check (scripts/schemathesis.toml).
# Fails on any failed check and on any warning.
# Usage: scripts/schemathesis.sh [MAX_EXAMPLES]   (default 25 per operation)
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-25}"
source scripts/python-env.sh
python_env schemathesis

# One admin token makes every request of the run: a plan it never exhausts.
export LOCI__RATE_LIMIT__DEFAULT_PLAN=enterprise
# Code intelligence reads a copy of the fixture repositories.
code_root="$(mktemp -d)"
cp -r tests/fixtures/code/. "$code_root/"
export LOCI__CODE__ALLOWED_ROOTS="$code_root"
source scripts/throwaway-server.sh
token="$("$loci" token --user schemathesis --org schemathesis --roles admin --ttl 2h)"

seeded="$(curl -fsS -X POST "http://127.0.0.1:$port/api/v1/memories" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"text": "Schemathesis seed: the release train leaves on Thursdays", "app": "schemathesis"}')"
LOCI_MEMORY_ID="$("$py" -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$seeded")"
LOCI_APP_ID="$("$py" -c 'import json,sys; print(json.load(sys.stdin)["app_id"])' <<<"$seeded")"
export LOCI_MEMORY_ID LOCI_APP_ID
# A memory for supersede and retract, which end it: the first one that
# succeeds archives it and the rest answer 409, leaving the seed above current.
ending="$(curl -fsS -X POST "http://127.0.0.1:$port/api/v1/memories" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"text": "Schemathesis seed: the office moves next spring", "app": "schemathesis"}')"
LOCI_ENDING_ID="$("$py" -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$ending")"
export LOCI_ENDING_ID
# An experiment for the {id} routes of /api/v1/experiments.
experiment="$(curl -fsS -X POST "http://127.0.0.1:$port/api/v1/experiments" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"name": "schemathesis", "traffic_percentage": 1, "variants": [{"name": "a", "weight": 0.5, "config": {}}, {"name": "b", "weight": 0.5, "config": {"mode": "lexical"}}]}')"
LOCI_EXPERIMENT_ID="$("$py" -c 'import json,sys; print(json.load(sys.stdin)["experiment_id"])' <<<"$experiment")"
export LOCI_EXPERIMENT_ID
# A job for GET /api/v1/memories/jobs/{id}: an inferred add run as a job.
job="$(curl -fsS -X POST "http://127.0.0.1:$port/api/v1/memories" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"infer": true, "async": true, "text": "Schemathesis seed: the team uses Rust for services", "app": "schemathesis"}')"
LOCI_JOB_ID="$("$py" -c 'import json,sys; print(json.load(sys.stdin)["job_id"])' <<<"$job")"
export LOCI_JOB_ID
# A repository indexed from the fixtures, its job and a symbol for the {id}
# routes of /api/v1/code (deleting a repository is left out below: it would
# take the seed away; tests/api/code.rs covers it).
indexed="$(curl -fsS -X POST "http://127.0.0.1:$port/api/v1/code/repos" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"path\": \"$code_root/rust\", \"name\": \"schemathesis\"}")"
LOCI_CODE_REPO_ID="$("$py" -c 'import json,sys; print(json.load(sys.stdin)["repo"]["id"])' <<<"$indexed")"
LOCI_CODE_JOB_ID="$("$py" -c 'import json,sys; print(json.load(sys.stdin)["job"]["job_id"])' <<<"$indexed")"
for _ in $(seq 1 100); do
    symbols="$(curl -fsS "http://127.0.0.1:$port/api/v1/code/symbols?name=parse_orders" -H "Authorization: Bearer $token")"
    [ "$symbols" != "[]" ] && break
    sleep 0.2
done
LOCI_CODE_SYMBOL_ID="$("$py" -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])' <<<"$symbols")"
export LOCI_CODE_REPO_ID LOCI_CODE_JOB_ID LOCI_CODE_SYMBOL_ID
# Entities for the merge route (the `entity-names` dictionary of the config).
curl -fsS -o /dev/null -X POST "http://127.0.0.1:$port/api/v1/memories" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"text": "Caroline met Melanie and Oscar in Denver. Zoe, Quentin and Priya flew to Paris with Ahmed. Lena called Tokyo and Berlin.", "app": "schemathesis"}'


# Every operation but the GDPR erasure, which would erase the caller's seeded
# data mid-run, and the runtime settings change, which could throttle it...
"$py" -I -m schemathesis.cli --config-file scripts/schemathesis.toml run "http://127.0.0.1:$port/openapi.json" \
    --max-examples "$examples" \
    --exclude-operation-id gdpr_erase \
    --exclude-operation-id config_put \
    --exclude-operation-id code_delete_repo \
    --header "Authorization: Bearer $token"
# ...which run on their own, as another admin of another org (it erases itself
# or subjects that hold nothing; no stateful phase: no link leads to them).
erasable="$("$loci" token --user schemathesis-erasable --org schemathesis-gdpr --roles admin --ttl 2h)"
"$py" -I -m schemathesis.cli --config-file scripts/schemathesis.toml run "http://127.0.0.1:$port/openapi.json" \
    --max-examples "$examples" \
    --include-operation-id gdpr_erase \
    --include-operation-id config_put \
    --phases examples,coverage,fuzzing \
    --header "Authorization: Bearer $erasable"
