"""Offline checks of deploy/ (run by scripts/validate-deploy.sh in its pinned
virtual environment: PyYAML, jsonschema, check-jsonschema's vendored
Compose Specification schema).

  compose   deploy/docker-compose.yml, interpolated with deploy/.env.example
            (empty secrets replaced by a placeholder), against the Compose
            Specification schema; then the repository's rules for every
            service: cap_drop ALL, no-new-privileges, a health check, pinned
            image tags, no literal secret, read-only root filesystem unless
            listed below, capabilities added back only from the small set an
            entrypoint needs to drop privileges, depends_on conditions that
            can be met, declared named volumes, LOCI__* variables that name
            real settings.
  env       deploy/.env.example: every variable the compose file needs is
            there, every secret is left empty; deploy/.env and .env are
            git-ignored.
  docker    deploy/Dockerfile: pinned base images, a non-root USER and a
            HEALTHCHECK in the final stage, no ADD of a URL, nothing named
            .env copied, .dockerignore excludes .env, target, loci-data, .git.
  toml      deploy/loci.production.toml parses (tomllib) and uses only keys
            that exist in crates/loci-settings (unknown keys stop Loci), and
            holds no secret.

Prints one line per finding and exits 1 when there is any.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
PROD_TOML = DEPLOY / "loci.production.toml"
SETTINGS_SRC = ROOT / "crates" / "loci-settings" / "src"

# Services whose image cannot run with a read-only root filesystem (the
# compose file says why next to each).
READ_WRITE_ALLOWED = {"opensearch", "neo4j"}
# Capabilities an entrypoint may need to chown its data directory and drop
# to its own user; anything else is a finding.
CAP_ADD_ALLOWED = {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"}
# Only the Loci servers publish ports; the engines stay on the internal network.
PUBLISHING_ALLOWED = {"loci-api", "loci-mcp"}
# Floating tags that are not pins.
FLOATING_TAGS = {"latest", "stable", "edge", "main", "master", "nightly", "dev", "rolling"}
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|APIKEY|PRIVATE_KEY|CREDENTIAL|_AUTH$|^NEO4J_AUTH$)", re.I)
# Stands in for the secrets deploy/.env.example leaves empty.
PLACEHOLDER = "unset-in-env-example"

findings: list[str] = []


def finding(area: str, message: str) -> None:
    findings.append(f"{area}: {message}")


# ------------------------------------------------------------ interpolation --

VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


def parse_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            finding("env", f"{path.relative_to(ROOT)}:{n}: not NAME=value")
            continue
        name, value = line.split("=", 1)
        env[name.strip()] = value.strip()
    return env


class Interpolator:
    """Compose-style ${VAR} interpolation; records what each reference needs."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.required: set[str] = set()  # ${VAR:?} / ${VAR?}
        self.referenced: set[str] = set()
        self.with_default: dict[str, str] = {}  # VAR -> default given

    def string(self, s: str) -> str:
        def sub(m: re.Match[str]) -> str:
            if m["escaped"]:
                return "$"
            name = m["braced"] or m["plain"]
            op, arg = m["op"], m["arg"] or ""
            self.referenced.add(name)
            value = self.env.get(name)
            if op in (":?", "?"):
                self.required.add(name)
                if value is None or (op == ":?" and value == ""):
                    return PLACEHOLDER
                return value
            if op in (":-", "-"):
                self.with_default[name] = arg
                if value is None or (op == ":-" and value == ""):
                    return arg
                return value
            if op in (":+", "+"):
                return arg if value else ""
            return value or ""

        return VAR.sub(sub, s)

    def walk(self, node):
        if isinstance(node, str):
            return self.string(node)
        if isinstance(node, list):
            return [self.walk(x) for x in node]
        if isinstance(node, dict):
            return {k: self.walk(v) for k, v in node.items()}
        return node


# ----------------------------------------------------------------- settings --


def settings_keys() -> set[str] | None:
    """Dotted keys of loci_settings::Settings, read from the Rust source.
    `section.*` marks a map whose keys are free (auth.roles)."""
    lib = SETTINGS_SRC / "lib.rs"
    sections = SETTINGS_SRC / "sections.rs"
    if not lib.is_file() or not sections.is_file():
        return None
    structs: dict[str, list[tuple[str, str]]] = {}
    for path in (lib, sections):
        text = path.read_text()
        for m in re.finditer(r"pub struct (\w+)\s*\{(.*?)\n\}", text, re.S):
            fields = re.findall(r"^\s*pub (\w+):\s*([^\n]+?),?\s*$", m[2], re.M)
            structs[m[1]] = fields
    if "Settings" not in structs:
        return None
    keys: set[str] = set()
    for name, ty in structs["Settings"]:
        if ty in structs:
            keys.add(name)
            for field, fty in structs[ty]:
                keys.add(f"{name}.{field}")
                if fty.startswith("BTreeMap") or fty.startswith("HashMap"):
                    keys.add(f"{name}.{field}.*")
        else:
            keys.add(name)
    return keys


def check_setting_key(area: str, key: str, keys: set[str]) -> None:
    parts = key.split(".")
    if key in keys:
        return
    for i in range(1, len(parts)):
        if ".".join(parts[:i]) + ".*" in keys:
            return
    finding(area, f"`{key}` is not a Loci setting (crates/loci-settings); unknown keys stop the server")


# ------------------------------------------------------------------ compose --


def image_tag(image: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of an image reference."""
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = image.rsplit(":", 1)
        return name, tag, digest
    return image, None, digest


def check_image(area: str, image: str, strict: bool = True) -> None:
    name, tag, digest = image_tag(image)
    if digest:
        return
    if not tag:
        finding(area, f"image `{image}` has no tag (pin one)")
    elif tag.lower() in FLOATING_TAGS:
        finding(area, f"image `{image}` uses the floating tag `{tag}`")
    elif strict and not re.search(r"\d+\.\d+", tag):
        finding(area, f"image `{image}`: pin at least major.minor (or a digest), not `{tag}`")


def literal_secret_in(area: str, value: str, raw: str) -> None:
    """`value` is interpolated, `raw` as written."""
    for m in re.finditer(r"://([^/:@\s]*):([^@\s]+)@", raw):
        if not m[2].startswith("${"):
            finding(area, f"a password is written in a URL (`{m[0]}`); use ${{VAR:?}}")
    for m in re.finditer(r"(--requirepass|--password|-a|-p)\s+(['\"]?)([^\s'\"]+)", raw):
        if not m[3].startswith("$") and "://" not in m[3]:
            finding(area, f"a password is written on a command line (`{m[1]} {m[3]}`)")


def check_compose(keys: set[str] | None) -> None:
    area = "compose"
    raw = yaml.safe_load(COMPOSE.read_text())
    if not isinstance(raw, dict) or "services" not in raw:
        finding(area, "no services")
        return
    env = parse_env_file(ENV_EXAMPLE) if ENV_EXAMPLE.is_file() else {}
    interp = Interpolator(env)
    doc = interp.walk(raw)

    # Schema (the interpolated model; the raw file is checked by the CLI too).
    schema_text = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    schema = json.loads(schema_text)
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        finding(area, f"schema (interpolated with .env.example): {where}: {error.message}")

    services: dict = doc.get("services") or {}
    raw_services: dict = raw.get("services") or {}
    declared_volumes = set((doc.get("volumes") or {}).keys())
    declared_networks = set((doc.get("networks") or {}).keys())
    for name, svc in services.items():
        s = f"{area}: service {name}"
        rsvc = raw_services.get(name) or {}
        caps = [c.upper() for c in svc.get("cap_drop") or []]
        if "ALL" not in caps:
            finding(s, "cap_drop must contain ALL")
        extra = {c.upper().removeprefix("CAP_") for c in svc.get("cap_add") or []} - CAP_ADD_ALLOWED
        if extra:
            finding(s, f"cap_add beyond {sorted(CAP_ADD_ALLOWED)}: {sorted(extra)}")
        secopt = [str(o).replace("=", ":") for o in svc.get("security_opt") or []]
        if "no-new-privileges:true" not in secopt and "no-new-privileges" not in secopt:
            finding(s, 'security_opt must contain "no-new-privileges:true"')
        if svc.get("privileged"):
            finding(s, "privileged")
        if svc.get("network_mode") == "host" or svc.get("pid") == "host" or svc.get("ipc") == "host":
            finding(s, "shares a host namespace")
        hc = svc.get("healthcheck")
        one_shot = str(svc.get("restart", "no")) == "no"
        if not isinstance(hc, dict):
            finding(s, "no healthcheck")
        elif hc.get("disable"):
            if not one_shot:
                finding(s, "healthcheck disabled on a long-running service (only one-shot jobs, restart: \"no\")")
        elif not hc.get("test"):
            finding(s, "healthcheck without test")
        if not svc.get("read_only") and name not in READ_WRITE_ALLOWED:
            finding(s, "read_only: true is required (or add it to READ_WRITE_ALLOWED with the reason in the compose file)")
        if svc.get("read_only") and not svc.get("tmpfs") and name != "otel-collector":
            finding(s, "read-only without a tmpfs for /tmp")
        image = svc.get("image")
        if not image:
            finding(s, "no image")
        else:
            check_image(s, image, strict=not name.startswith("loci"))
        if svc.get("ports") and name not in PUBLISHING_ALLOWED:
            finding(s, "publishes ports; engines stay on the internal network")
        for p in svc.get("ports") or []:
            text = p if isinstance(p, str) else json.dumps(p)
            if isinstance(p, str) and p.count(":") >= 2 and not p.startswith(("127.0.0.1:", "[::1]:")):
                finding(s, f"port `{text}` is published on every interface; bind 127.0.0.1 behind the proxy")
            elif isinstance(p, str) and p.count(":") < 2:
                finding(s, f"port `{text}` is published on every interface; bind 127.0.0.1 behind the proxy")
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            finding(s, "depends_on without conditions (use condition: service_healthy)")
            deps = {}
        for dep, spec in deps.items():
            cond = (spec or {}).get("condition", "service_started")
            other = services.get(dep)
            if other is None:
                finding(s, f"depends_on unknown service {dep}")
                continue
            if cond == "service_healthy":
                ohc = other.get("healthcheck") or {}
                if ohc.get("disable") or not ohc.get("test"):
                    finding(s, f"waits for {dep} to be healthy, but {dep} has no health check")
            elif cond == "service_completed_successfully":
                if str(other.get("restart", "no")) != "no":
                    finding(s, f"waits for {dep} to complete, but {dep} restarts")
            else:
                finding(s, f"depends_on {dep} with condition {cond}; use service_healthy")
        for vol in svc.get("volumes") or []:
            source = vol.split(":", 1)[0] if isinstance(vol, str) else (vol or {}).get("source", "")
            if not source:
                finding(s, f"anonymous volume {vol}")
            elif source.startswith((".", "/", "~")):
                if "docker.sock" in source:
                    finding(s, "mounts the Docker socket")
                target = vol.split(":")[1] if isinstance(vol, str) else vol.get("target")
                mode = vol.split(":")[2] if isinstance(vol, str) and vol.count(":") >= 2 else ""
                if isinstance(vol, str) and "ro" not in mode.split(","):
                    finding(s, f"bind mount {source} -> {target} is not read-only")
                if source.startswith(".") and not (DEPLOY / source).resolve().exists():
                    finding(s, f"bind mount source {source} does not exist")
            elif source not in declared_volumes:
                finding(s, f"named volume {source} is not declared under volumes:")
        nets = svc.get("networks") or []
        for net in nets if isinstance(nets, list) else nets.keys():
            if net not in declared_networks:
                finding(s, f"network {net} is not declared under networks:")
        # Secrets: variables named like one must come from ${VAR:?} (no default),
        # and nothing may carry a literal password.
        renv = rsvc.get("environment") or {}
        if isinstance(renv, list):
            finding(s, "environment as a list; use a mapping")
            renv = {}
        for key, rvalue in renv.items():
            rvalue = "" if rvalue is None else str(rvalue)
            if SECRET_NAME.search(key):
                refs = re.findall(r"\$\{([A-Za-z_]\w*)(:?[-?+])?", rvalue)
                if not refs:
                    finding(s, f"{key} is a literal; take it from deploy/.env with ${{VAR:?}}")
                for var, op in refs:
                    if op in (":-", "-") and SECRET_NAME.search(var):
                        finding(s, f"{key}: secret {var} has a default; use ${{{var}:?}}")
            literal_secret_in(f"{s} env {key}", "", rvalue)
            if keys is not None and key.startswith("LOCI__"):
                check_setting_key(f"{s} env", key[len("LOCI__"):].lower().replace("__", "."), keys)
            elif key.startswith("LOCI_") and not key.startswith("LOCI__") and name.startswith("loci"):
                if key not in {"LOCI_CONFIG", "LOCI_PROFILE", "LOCI_TOKEN"}:
                    finding(s, f"{key} is not read by Loci (LOCI_CONFIG, LOCI_PROFILE or LOCI__SECTION__KEY)")
        for field in ("command", "entrypoint"):
            value = rsvc.get(field)
            if value:
                literal_secret_in(f"{s} {field}", "", value if isinstance(value, str) else " ".join(map(str, value)))
        rhc = (rsvc.get("healthcheck") or {}).get("test")
        if rhc:
            literal_secret_in(f"{s} healthcheck", "", rhc if isinstance(rhc, str) else " ".join(map(str, rhc)))

    # .env.example covers the compose file, and keeps secrets empty.
    missing = sorted(v for v in interp.required if v not in env)
    for var in missing:
        finding("env", f"{var} is required by the compose file (${{{var}:?}}) but absent from deploy/.env.example")
    for var, value in env.items():
        if SECRET_NAME.search(var) and value:
            finding("env", f"deploy/.env.example sets the secret {var}; leave it empty")
        if var not in interp.referenced:
            finding("env", f"deploy/.env.example defines {var}, which the compose file does not use")


def check_gitignore() -> None:
    for path in ("deploy/.env", ".env"):
        r = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", path], check=False)
        if r.returncode != 0:
            finding("env", f"{path} is not git-ignored")
    r = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "deploy/.env.example"], check=False)
    if r.returncode == 0:
        finding("env", "deploy/.env.example is git-ignored; it is the committed template")


# --------------------------------------------------------------- Dockerfile --


def dockerfile_instructions(text: str) -> list[tuple[int, str, str]]:
    """(line, INSTRUCTION, arguments) with continuations joined, comments dropped."""
    out: list[tuple[int, str, str]] = []
    buf, start = "", 0
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if not buf:
            start = n
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((start, word.upper(), rest.strip()))
        buf = ""
    return out


def check_dockerfile() -> None:
    area = "Dockerfile"
    text = DOCKERFILE.read_text()
    instructions = dockerfile_instructions(text)
    args: dict[str, str] = {}
    stages: list[list[tuple[int, str, str]]] = []
    for n, ins, rest in instructions:
        if ins == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip().strip('"')
        if ins == "FROM":
            stages.append([])
            ref = rest.split()[0]
            ref = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], ""), ref)
            if ref.lower() != "scratch" and not any(ref == "" or ref == s for s in ()):
                check_image(f"{area}:{n}", ref, strict=False)
        if stages:
            stages[-1].append((n, ins, rest))
        if ins == "ADD":
            if re.search(r"(^|\s)(https?|git|ssh)://|git@", rest):
                finding(f"{area}:{n}", "ADD of a remote URL; download in a RUN step with a checksum")
            else:
                finding(f"{area}:{n}", "ADD; use COPY for local files")
        if ins in ("COPY", "ADD"):
            sources = [t for t in rest.split() if not t.startswith("--")][:-1]
            for src in sources:
                if re.search(r"(^|/)\.env($|[./])", src.strip('"[],')):
                    finding(f"{area}:{n}", f"copies {src} (secrets stay out of the image)")
        if ins in ("ENV", "ARG"):
            for name in re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", rest) or [rest.split("=")[0].split()[0]]:
                if SECRET_NAME.search(name):
                    finding(f"{area}:{n}", f"{ins} {name}: secrets must not be baked into the image")
    if not stages:
        finding(area, "no FROM")
        return
    final = stages[-1]
    users = [rest for _, ins, rest in final if ins == "USER"]
    if not users:
        finding(area, "the final stage has no USER (it would run as root)")
    elif users[-1].split(":")[0] in ("0", "root"):
        finding(area, f"the final stage runs as {users[-1]}")
    hcs = [rest for _, ins, rest in final if ins == "HEALTHCHECK"]
    if not hcs or hcs[-1].upper().startswith("NONE"):
        finding(area, "the final stage has no HEALTHCHECK")
    if not any(ins == "EXPOSE" for _, ins, _ in final):
        finding(area, "no EXPOSE in the final stage")
    for _, ins, rest in final:
        if ins in ("ENTRYPOINT", "CMD") and not rest.startswith("["):
            finding(area, f"{ins} in shell form; use the exec (JSON) form")

    ignore = ROOT / ".dockerignore"
    if not ignore.is_file():
        finding(".dockerignore", "missing at the repository root (the build context)")
    else:
        lines = [l.strip() for l in ignore.read_text().splitlines() if l.strip() and not l.startswith("#")]
        allow_list = "*" in lines
        for needed in (".env", "target", "loci-data", ".git"):
            patterns = {needed, f"**/{needed}", f"/{needed}", f"{needed}/", f"**/{needed}/", f"/{needed}/"}
            if not patterns & set(lines):
                finding(".dockerignore", f"does not exclude {needed}")
            if allow_list and any(l.startswith("!") and l.lstrip("!").rstrip("/").endswith(needed) for l in lines):
                finding(".dockerignore", f"re-includes {needed}")


# --------------------------------------------------------------------- TOML --


def flatten(prefix: str, node: dict, out: list[tuple[str, object]]) -> None:
    for k, v in node.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.append((key, v))
            flatten(key, v, out)
        else:
            out.append((key, v))


def check_toml(keys: set[str] | None) -> None:
    area = "loci.production.toml"
    try:
        data = tomllib.loads(PROD_TOML.read_text())
    except tomllib.TOMLDecodeError as e:
        finding(area, f"does not parse: {e}")
        return
    if data.get("profile") != "production":
        finding(area, 'profile must be "production"')
    items: list[tuple[str, object]] = []
    flatten("", data, items)
    secret_keys = {
        "database.url", "database.migration_url", "valkey.url", "auth.hmac_keys", "dpop.nonce_secret",
        "embeddings.api_key", "vector.api_key", "lexical.password", "graph.password", "categorizer.api_key",
        "infer.api_key",
    }
    for key, value in items:
        if keys is not None:
            check_setting_key(area, key, keys)
        if key in secret_keys:
            finding(area, f"{key} is a secret; set it from the environment (LOCI__{key.upper().replace('.', '__')})")
    if keys is None:
        finding(area, "cannot read the setting keys from crates/loci-settings/src (lib.rs, sections.rs)")


def main() -> int:
    keys = settings_keys()
    check_compose(keys)
    check_gitignore()
    check_dockerfile()
    check_toml(keys)
    for f in findings:
        print(f"FINDING {f}")
    if findings:
        print(f"validate_deploy: {len(findings)} finding(s)")
        return 1
    print("validate_deploy: compose (schema + rules), .env.example, Dockerfile, .dockerignore, loci.production.toml: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
