#!/usr/bin/env bash
# Interoperability check with an independent client: the official MCP Python
# SDK (PyPI `mcp`, 1.x: the line that speaks the initialize/session revisions
# Loci serves) connects to `loci serve` over streamable HTTP with a token,
# lists the tools and does add_memories -> search_memory.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import mcp.client.streamable_http' >/dev/null 2>&1; then
    echo "[mcp-python] installing the MCP Python SDK from PyPI" >&2
    python3 -m pip install --quiet --disable-pip-version-check 'mcp>=1.20,<2' >&2 \
        || python3 -m pip install --quiet --break-system-packages 'mcp>=1.20,<2' >&2
fi

source scripts/throwaway-server.sh
token="$("$loci" token --user python-sdk --org interop --roles editor --ttl 1h)"
python3 scripts/mcp_python_client.py "http://127.0.0.1:$port/mcp" "$token"
