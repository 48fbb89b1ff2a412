#!/usr/bin/env bash
# Interoperability check with an independent client: the official MCP Python
# SDK (PyPI `mcp`), both its current 2.x line and the last 1.x release, each
# in its own pinned virtual environment (scripts/python-env.sh; the machine's
# site-packages are never used). Each connects to `loci serve` over
# streamable HTTP with a token and to `loci mcp` over stdio, and runs
# initialize, tools/list, add_memories, search_memory, error paths and
# session end (scripts/mcp_python_client.py).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh

source scripts/throwaway-server.sh
token="$("$loci" token --user python-sdk --org interop --roles editor --ttl 1h)"

# stdio runs its own process on its own data directory: in the embedded
# profile one data directory has one writer, and the server holds $data.
stdio_data="$(mktemp -d)"
trap 'rm -rf "$stdio_data"; cleanup_server' EXIT
stdio_token="$(LOCI__DATA_DIR="$stdio_data" "$loci" token --user python-sdk --org interop --roles editor --ttl 1h)"

for sdk in mcp-2 mcp-1; do
    python_env "$sdk"
    "$py" -I scripts/mcp_python_client.py http "http://127.0.0.1:$port/mcp" "$token"
    LOCI__DATA_DIR="$stdio_data" LOCI_TOKEN="$stdio_token" \
        "$py" -I scripts/mcp_python_client.py stdio "$loci"
done
