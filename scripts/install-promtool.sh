#!/usr/bin/env bash
# Makes promtool (Prometheus' rule checker) available and prints its path on
# stdout; everything else goes to stderr. Idempotent:
#
#   1. promtool already on PATH, or cached by an earlier run under
#      ${XDG_CACHE_HOME:-~/.cache}/loci/bin: that one, nothing installed.
#   2. As root, or with passwordless sudo: `apt-get install prometheus`
#      (Debian's package ships /usr/bin/promtool), without recommends, with
#      the package's service kept from starting (a temporary
#      /usr/sbin/policy-rc.d when there is none) and, on a systemd host,
#      disabled again, so installing it leaves no Prometheus server running
#      or starting at boot. `apt-get update` is run once if the package is
#      not known yet.
#   3. Otherwise: `apt-get download prometheus` (no root needed) and only
#      usr/bin/promtool extracted into the cache of step 1.
#
# Usage: promtool="$(bash scripts/install-promtool.sh)" && "$promtool" --version
set -euo pipefail

log() { echo "[promtool] $*" >&2; }

cache_bin="${XDG_CACHE_HOME:-$HOME/.cache}/loci/bin"

if command -v promtool >/dev/null 2>&1; then
    command -v promtool
    exit 0
fi
if [ -x "$cache_bin/promtool" ]; then
    echo "$cache_bin/promtool"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    log "promtool is not on PATH and this is not a Debian-like system (no apt-get);"
    log "install Prometheus' promtool (2.42 or later) and put it on PATH"
    exit 1
fi

# Root, or passwordless sudo (only when not root).
can_root=1
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        can_root=0
    fi
fi

# apt-cache knows the package (after one `apt-get update` if needed)?
package_known() {
    [ -n "$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ { print $2 }' | grep -v '(none)')" ]
}

if [ "$can_root" -eq 1 ]; then
    if ! package_known; then
        log "apt-get update (the package lists do not know prometheus yet)"
        "${as_root[@]}" apt-get update -qq >&2 || true
    fi
    was_installed=0
    dpkg-query -W -f='${Status}' prometheus 2>/dev/null | grep -q 'install ok installed' && was_installed=1
    # Keep the package's service from starting while it is installed.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# temporary, scripts/install-promtool.sh: start no service\nexit 101\n' |
            "${as_root[@]}" tee "$policy" >/dev/null
        "${as_root[@]}" chmod 755 "$policy"
        own_policy=1
    fi
    log "apt-get install --no-install-recommends prometheus (for /usr/bin/promtool)"
    rc=0
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends prometheus >&2 || rc=$?
    if [ "$own_policy" -eq 1 ]; then
        "${as_root[@]}" rm -f "$policy"
    fi
    if [ "$rc" -ne 0 ]; then
        log "installing the prometheus package failed"
        exit 1
    fi
    # We only wanted promtool: no Prometheus server now or at the next boot.
    if [ "$was_installed" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
        if [ -d /run/systemd/system ]; then
            "${as_root[@]}" systemctl disable --now prometheus.service >&2 2>/dev/null || true
        else
            "${as_root[@]}" systemctl disable prometheus.service >&2 2>/dev/null || true
        fi
    fi
    if command -v promtool >/dev/null 2>&1; then
        command -v promtool
        exit 0
    fi
    if [ -x /usr/bin/promtool ]; then
        echo /usr/bin/promtool
        exit 0
    fi
    log "the prometheus package is installed but has no /usr/bin/promtool"
    exit 1
fi

# No root: fetch the package file and take promtool out of it.
if ! package_known; then
    log "the package lists do not know prometheus and updating them needs root"
    exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
log "apt-get download prometheus (no root: extracting promtool into $cache_bin)"
if ! (cd "$tmp" && apt-get download -qq prometheus >&2); then
    log "downloading the prometheus package failed"
    exit 1
fi
dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
if [ ! -x "$tmp/root/usr/bin/promtool" ]; then
    log "the prometheus package has no usr/bin/promtool"
    exit 1
fi
mkdir -p "$cache_bin"
install -m 0755 "$tmp/root/usr/bin/promtool" "$cache_bin/promtool.partial"
mv "$cache_bin/promtool.partial" "$cache_bin/promtool"
echo "$cache_bin/promtool"
