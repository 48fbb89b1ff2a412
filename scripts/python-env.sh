#!/usr/bin/env bash
# Isolated Python environments for the Python-based checks. Each check gets
# its own virtual environment, created from scripts/python/<name>.txt (exact
# pins) under ${XDG_CACHE_HOME:-~/.cache}/loci/venvs/<name>, and recreated
# when that file changes. The machine's site-packages are neither read (the
# environment does not see system site packages) nor changed.
#
# Usage (sourced):  source scripts/python-env.sh; python_env mcp-2
#   -> sets $py to the environment's interpreter
# Usage (run):      bash scripts/python-env.sh mcp-2   -> prints the interpreter

python_env() {
    local name="$1"
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    local requirements="$root/python/$name.txt"
    [ -f "$requirements" ] || { echo "[python-env] no $requirements" >&2; return 1; }
    local dir="${XDG_CACHE_HOME:-$HOME/.cache}/loci/venvs/$name"
    local stamp
    stamp="$(sha256sum "$requirements" | cut -d' ' -f1)"
    if [ ! -x "$dir/bin/python" ] || [ "$(cat "$dir/.loci-requirements" 2>/dev/null)" != "$stamp" ]; then
        if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
            echo "[python-env] python3 with venv and ensurepip is required (Debian: python3-venv)" >&2
            return 1
        fi
        echo "[python-env] creating $dir from scripts/python/$name.txt" >&2
        rm -rf "$dir"
        python3 -m venv "$dir" >&2 || { rm -rf "$dir"; return 1; }
        # A failed install leaves no stamp (and no environment), so the next
        # call tries again instead of using a half-installed one.
        if ! "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
            --isolated -r "$requirements" >&2; then
            echo "[python-env] installing scripts/python/$name.txt failed" >&2
            rm -rf "$dir"
            return 1
        fi
        echo "$stamp" > "$dir/.loci-requirements"
    fi
    py="$dir/bin/python"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    python_env "${1:?usage: python-env.sh NAME}"
    echo "$py"
fi
