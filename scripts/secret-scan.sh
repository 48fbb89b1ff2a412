#!/usr/bin/env bash
# Secret scan of the git-tracked tree (`git ls-files`) with Yelp's
# detect-secrets, pinned in scripts/python/secret-scan.txt and installed once
# under ~/.cache/loci/venvs/secret-scan. Fails on any finding that is not an
# audited false positive in .secrets.baseline.
#
#   scripts/secret-scan.sh                    scan (what CI runs)
#   scripts/secret-scan.sh --self-test        prove it catches planted secrets
#   scripts/secret-scan.sh --update-baseline  after adding a deliberate fixture;
#       then audit the new entries (~/.cache/loci/venvs/secret-scan/bin/
#       detect-secrets audit .secrets.baseline) and commit the baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/python-env.sh
source scripts/python-env.sh
python_env secret-scan
exec "$py" scripts/secret_scan.py "$@"
