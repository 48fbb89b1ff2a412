"""Secret scan of the git-tracked tree (and of new files not ignored) with Yelp's detect-secrets (run by
scripts/secret-scan.sh in its pinned virtual environment).

  (no argument)       scan every file `git ls-files --cached --others
                      --exclude-standard` lists with the plugins
                      and filters recorded in .secrets.baseline; fail when a
                      finding is not in the baseline, or when the baseline
                      holds an entry not audited as a false positive
                      ("is_secret": false).
  --update-baseline   re-scan and rewrite .secrets.baseline, keeping the
                      audit labels of known entries; new entries come in
                      unaudited, so the scan fails until someone audits them
                      (`detect-secrets audit .secrets.baseline`, in the same
                      environment) and commits the result.
  --self-test         plant one secret of each kind in a temporary directory
                      (built at run time, so this file holds none) and check
                      that the scan reports every one of them.

The baseline matches findings by file, secret hash and type, not by line, so
edits around a known test fixture do not fail the scan.
"""

from __future__ import annotations

import json
import os
import secrets as rnd
import string
import subprocess
import sys
import tempfile
from pathlib import Path

from detect_secrets.core import baseline as bl
from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import default_settings

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ".secrets.baseline"


def tracked_files() -> list[str]:
    # Tracked files, plus new files not ignored yet (so a secret is caught
    # before `git add`); in a fresh clone (CI) that is exactly the tracked tree.
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    files = []
    for name in out.decode().split("\0"):
        if not name or name == BASELINE:
            continue
        path = ROOT / name
        if path.is_file() and not path.is_symlink():
            files.append(name)
    return files


def scan(files: list[str]) -> SecretsCollection:
    found = SecretsCollection()  # relative paths from ROOT (main() chdirs there)
    found.scan_files(*files)
    return found


def relative(filename: str) -> str:
    return os.path.relpath(filename, ROOT) if os.path.isabs(filename) else filename


def describe(collection: SecretsCollection) -> list[str]:
    return sorted(f"{relative(s.filename)}:{s.line_number}: {s.type}" for _, s in collection)


def load_baseline() -> SecretsCollection:
    path = ROOT / BASELINE
    if not path.is_file():
        sys.exit(f"secret-scan: {BASELINE} is missing; create it with scripts/secret-scan.sh --update-baseline")
    return bl.load(bl.load_from_file(str(path)), str(path))


def write_baseline(collection: SecretsCollection) -> None:
    output = bl.format_for_output(collection)
    (ROOT / BASELINE).write_text(json.dumps(output, indent=2, sort_keys=True) + "\n")


def run_scan() -> int:
    known = load_baseline()
    unaudited = [s for _, s in known if s.is_secret is not False]
    current = scan(tracked_files())
    new = current - known
    status = 0
    if new:
        status = 1
        print("secret-scan: FAILED: possible secrets in the scanned files (not in the audited baseline):")
        for line in describe(new):
            print(f"  {line}")
        print("  Remove them (and rotate anything real). A deliberate test fixture: run")
        print("  scripts/secret-scan.sh --update-baseline, audit it, and commit .secrets.baseline.")
    if unaudited:
        status = 1
        print(f"secret-scan: FAILED: {BASELINE} has entries not audited as false positives:")
        for s in unaudited:
            print(f"  {relative(s.filename)}:{s.line_number}: {s.type} (is_secret: {s.is_secret})")
    if status == 0:
        print(
            f"secret-scan: OK: {len(tracked_files())} files, no finding outside the "
            f"{len(list(known))} audited false positives of {BASELINE}"
        )
    return status


def update_baseline() -> int:
    path = ROOT / BASELINE
    if path.is_file():
        known = load_baseline()
        current = scan(tracked_files())
        current.merge(known)
    else:
        with default_settings():
            current = scan(tracked_files())
            write_baseline(current)
        print(f"secret-scan: created {BASELINE}; audit every entry before committing it")
        return 0
    write_baseline(current)
    unaudited = [s for _, s in current if s.is_secret is not False]
    print(f"secret-scan: wrote {BASELINE} ({len(list(current))} entries, {len(unaudited)} to audit)")
    for s in unaudited:
        print(f"  to audit: {relative(s.filename)}:{s.line_number}: {s.type}")
    return 0


def self_test() -> int:
    load_baseline()  # the same plugins and filters as the real scan
    alnum = string.ascii_letters + string.digits

    def pick(alphabet: str, n: int) -> str:
        return "".join(rnd.choice(alphabet) for _ in range(n))

    upper = string.ascii_uppercase + string.digits
    key_body = "\n".join(pick(alnum + "+/", 64) for _ in range(8))
    plants = {
        "AWS Access Key": ("aws.env", "AWS_ACCESS_KEY_ID=" + "AK" + "IA" + pick(upper, 16) + "\n"),
        "Private Key": ("id_rsa", "-----BEGIN " + "RSA PRIVATE KEY-----\n" + key_body + "\n-----END " + "RSA PRIVATE KEY-----\n"),
        "GitHub Token": ("ci.sh", "export GH_TOKEN=" + "gh" + "p_" + pick(alnum, 36) + "\n"),
        "Slack Token": ("notify.py", "SLACK = '" + "xo" + "xb-" + pick(string.digits, 12) + "-" + pick(string.digits, 12) + "-" + pick(alnum, 24) + "'\n"),
        "Secret Keyword": ("settings.py", "db_password = \"" + pick("0123456789abcdef", 32) + "\"\n"),
        "Basic Auth Credentials": ("db.toml", 'url = "postgres://admin:' + pick(alnum, 20) + '@db:5432/app"\n'),
    }
    with tempfile.TemporaryDirectory(prefix="loci-secret-scan-") as tmp:
        files = []
        for name, content in plants.values():
            path = os.path.join(tmp, name)
            Path(path).write_text(content)
            files.append(path)
        found = SecretsCollection()
        found.scan_files(*files)
        types = {s.type for _, s in found}
    missing = sorted(set(plants) - types)
    for kind in sorted(plants):
        print(f"  {'caught' if kind in types else 'MISSED'}: {kind}")
    if missing:
        print(f"secret-scan self-test: FAILED: not detected: {', '.join(missing)}")
        return 1
    print(f"secret-scan self-test: OK: all {len(plants)} planted secrets detected")
    return 0


def main(argv: list[str]) -> int:
    os.chdir(ROOT)
    if argv == []:
        return run_scan()
    if argv == ["--update-baseline"]:
        return update_baseline()
    if argv == ["--self-test"]:
        return self_test()
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
