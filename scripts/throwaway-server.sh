# Sourced by scripts that need a running Loci: builds `loci`, starts
# `loci serve` (embedded profile, throwaway data directory, free port, the
# local embedding model) and stops it on exit. Sets $loci, $port, $data.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loci-target}"
cargo build --quiet --bin loci
loci="$CARGO_TARGET_DIR/debug/loci"
data="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cleanup_server() { [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null; rm -rf "$data"; }
trap cleanup_server EXIT

export LOCI__DATA_DIR="$data" LOCI__SERVER__PORT="$port" LOCI__TELEMETRY__LOG_LEVEL=warn
model_cache="$HOME/.cache/loci-models/all-MiniLM-L6-v2"
bash scripts/fetch-model.sh "$model_cache" >&2
export LOCI__EMBEDDINGS__MODEL_DIR="$model_cache"
"$loci" serve > "$data/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$port/health/live" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/health/live" >/dev/null || { cat "$data/serve.log" >&2; exit 1; }
