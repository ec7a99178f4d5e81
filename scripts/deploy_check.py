"""Keeps the deployment files in step with scripts/ and the binary.

Run by scripts/deploy-check.sh after the linters, with the checkers' virtualenv's Python
(ruamel.yaml for the workflow) and Docker Compose's own loader for docker-compose.yml:

    deploy_check.py ROOT DOCKER_COMPOSE [AIRFLOW_PYTHON] [CONFIG_SHOW]

(CONFIG_SHOW: a file holding what `setlist config show` printed with no settings.)

What it compares, each against the place that owns the fact:
- names and ports: the bucket, its port and the AWS_* variables (scripts/s3.sh), the
  topic (the configuration, through `setlist config show`), the database and its port (scripts/postgres.sh,
  scripts/lib.sh), the broker's port (scripts/kafka.sh), the web port and that the
  scripts keep 127.0.0.1 (scripts/run.sh);
- pins: dbt (scripts/dbt.sh), Airflow (scripts/airflow.sh and its constraints file), the Rust toolchain and
  PostgreSQL's major version (Dockerfile, docker-compose.yml and the workflow alike);
- every environment variable compose or the Dockerfile sets is one the binary, dbt's
  profiles or scripts/ read; pass-through defaults match dbt/profiles.yml's;
- compose: health checks on every long-running service, depends_on only with
  service_healthy or service_completed_successfully, ports published on 127.0.0.1,
  secrets only from variables, and .env.example naming every required one with a
  placeholder, never a real value;
- the Dockerfile: non-root user, HEALTHCHECK on /healthz, EXPOSE and --web on
  0.0.0.0 with the web port, runtime libraries for rdkafka's features, no secret;
- the workflow runs .ci/run with the caches keyed on Cargo.lock and the scripts;
- the BI files: both .pbids point at gold's database, docs/bi.md covers every gold
  model and names only columns the models have; README points to both.

Prints every problem it finds, then exits 1 if there was any.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(sys.argv[1]).resolve()
COMPOSE_BIN = sys.argv[2]
# Airflow's Python (scripts/airflow.sh's virtualenv), when the adapter is there to check.
AIRFLOW_PYTHON = sys.argv[3] if len(sys.argv) > 3 else ""
# What `setlist config show` printed with no settings given: every key's default and
# the variable that sets it. The configuration is the one owner of those facts.
CONFIG_SHOW = Path(sys.argv[4]).read_text() if len(sys.argv) > 4 else ""
problems: list[str] = []


def problem(where: str, message: str) -> None:
    problems.append(f"{where}: {message}")


def read(rel: str) -> str:
    path = ROOT / rel
    if not path.exists():
        problem(rel, "missing")
        return ""
    return path.read_text()


def one(pattern: str, text: str, where: str, what: str, flags: int = 0) -> str | None:
    """The first group of the one place `pattern` matches, or a problem saying what is missing."""
    m = re.search(pattern, text, flags)
    if not m:
        problem(where, f"cannot find {what} (pattern {pattern!r}); update scripts/deploy_check.py if it moved")
        return None
    return m.group(1)


def expect(where: str, what: str, found: object, wanted: object, owner: str) -> None:
    if found != wanted:
        problem(where, f"{what} is {found!r}, but {owner} says {wanted!r}")


# --- Facts, from the files that own them ---------------------------------------------

lib_sh, postgres_sh, kafka_sh, s3_sh = (read(f"scripts/{n}.sh") for n in ("lib", "postgres", "kafka", "s3"))
run_sh, dbt_sh = read("scripts/run.sh"), read("scripts/dbt.sh")
pg_port = one(r'SETLIST_PG_PORT="\$\{SETLIST_PG_PORT:-(\d+)\}"', lib_sh, "scripts/lib.sh", "the PostgreSQL port")
db_name = one(r"CREATE DATABASE (\w+)", postgres_sh, "scripts/postgres.sh", "the database it creates")
kafka_port = one(r'port="\$\{SETLIST_KAFKA_PORT:-(\d+)\}"', kafka_sh, "scripts/kafka.sh", "the broker port")
s3_port = one(r'port="\$\{SETLIST_S3_PORT:-(\d+)\}"', s3_sh, "scripts/s3.sh", "the S3 port")
bucket = one(r'echo "SETLIST_S3_BUCKET=([\w.-]+)"', s3_sh, "scripts/s3.sh", "the bucket")
s3_vars = re.findall(r'^echo "(AWS_\w+)=', s3_sh, re.M)
web = one(r'--web "\$\{SETLIST_WEB:-([\d.]+:\d+)\}"', run_sh, "scripts/run.sh", "the web address")
web_host, web_port = (web.split(":") if web else (None, None))
if web_host is not None and web_host != "127.0.0.1":
    problem("scripts/run.sh", f"the scripts serve the web on {web_host}, not 127.0.0.1")
dbt_pins = dict(re.findall(r"\b(dbt-core|dbt-postgres|dbt-snowflake)==([\w.]+)", dbt_sh))
if len(dbt_pins) != 3:
    problem("scripts/dbt.sh", f"expected pins for dbt-core, dbt-postgres and dbt-snowflake, found {dbt_pins}")
airflow_sh = ROOT / "scripts/airflow.sh"
airflow_version = None
if airflow_sh.exists():
    airflow_version = one(r"apache-airflow(?:\[[\w,]+\])?==([\w.]+)", airflow_sh.read_text(), "scripts/airflow.sh", "the Airflow pin")
    constraints = f"scripts/airflow-constraints-{airflow_version}.txt"
    if "--constraint" not in airflow_sh.read_text() or Path(constraints).name not in airflow_sh.read_text():
        problem("scripts/airflow.sh", f"does not install with --constraint {constraints}")
    pinned = one(r"^apache-airflow==([\w.]+)$", read(constraints), constraints, "the apache-airflow pin", re.M)
    expect(constraints, "apache-airflow's pin", pinned, airflow_version, "scripts/airflow.sh")

settings = {m.group(1): (json.loads(m.group(2)) if m.group(2) != "(unset)" else None, m.group(3))
            for m in re.finditer(r"^([\w.]+) = (.*?)    # .*; variable (\w+)$", CONFIG_SHOW, re.M)}
aliases = dict(re.findall(r"^# (\w+) also sets ([\w.]+)$", CONFIG_SHOW, re.M))
if "kafka.topic" not in settings:
    problem("setlist config show", "does not list kafka.topic; pass its output as deploy_check.py's fourth argument")
topic = settings.get("kafka.topic", (None, None))[0]

# Every variable the binary reads or sets for its children, dbt's profiles read, or the
# scripts print; anything else in compose or the Dockerfile is a typo or a stale name.
rust_sources = [p for d in ("src", "orchestrator/src", "tasks/src", "web/src") for p in (ROOT / d).rglob("*.rs")]
known_vars: set[str] = {var for _, var in settings.values()} | set(aliases)
for path in rust_sources:
    known_vars |= set(re.findall(r'"((?:SETLIST|SNOWFLAKE|AWS|DBT)_[A-Z0-9_]+|DATABASE_URL)"', path.read_text()))
profiles = read("dbt/profiles.yml")
profile_defaults = dict(re.findall(r"env_var\('(\w+)',\s*'([^']*)'\)", profiles))
known_vars |= set(profile_defaults)
for script in (ROOT / "scripts").glob("*.sh"):
    known_vars |= set(re.findall(r'^echo "([A-Z][A-Z0-9_]+)=', script.read_text(), re.M))
# AWS_* the configuration passes on to object_store as the s3 connection, and dbt's own (not all named in our sources).
known_vars |= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "DBT_LOG_PATH"}

# --- docker-compose.yml, as Docker Compose itself loads it ---------------------------


compose_failed = False


def compose_config(*extra: str) -> dict:
    global compose_failed
    cmd = [COMPOSE_BIN, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"),
           "--env-file", str(ROOT / ".env.example"), "--profile", "airflow", "config", "--format", "json", *extra]
    # PATH only: Compose interpolates from the environment before .env.example, so a real
    # SETLIST_API_TOKEN or password exported in this shell would land in what we print.
    out = subprocess.run(cmd, capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "")})
    if out.returncode != 0:
        problem("docker-compose.yml", f"docker compose config failed: {out.stderr.strip()}")
        compose_failed = True
        return {"services": {}}
    return json.loads(out.stdout)


config = compose_config()
raw = compose_config("--no-interpolate")
if compose_failed:  # nothing below means much until Compose can load the file
    print("\n".join(["Docker Compose cannot load docker-compose.yml; fix that first:", *problems]), file=sys.stderr)
    sys.exit(1)
services = config.get("services", {})
raw_services = raw.get("services", {})
C = "docker-compose.yml"

for name, image in (("postgres", "postgres:"), ("kafka", "apache/kafka:"), ("minio", "minio/minio:"),
                    ("minio-init", "minio/mc:"), ("airflow", "apache/airflow:")):
    if not services.get(name, {}).get("image", "").startswith(image):
        problem(C, f"service {name} should run the image {image}<version>")
if "setlist" not in services or services["setlist"].get("build", {}).get("dockerfile") != "Dockerfile":
    problem(C, "service setlist should be built from the Dockerfile")

# Health, dependencies, published ports.
for name, svc in services.items():
    one_shot = svc.get("restart") == "no"
    hc = svc.get("healthcheck")
    if not one_shot and (not hc or hc.get("disable") or not hc.get("test")):
        problem(C, f"long-running service {name} has no healthcheck test of its own")
    for dep, how in (svc.get("depends_on") or {}).items():
        cond = how.get("condition")
        target = services.get(dep, {})
        wanted = "service_completed_successfully" if target.get("restart") == "no" else "service_healthy"
        if cond != wanted:
            problem(C, f"{name} depends on {dep} with condition {cond}; use {wanted}")
    for port in svc.get("ports", []):
        if port.get("host_ip") != "127.0.0.1":
            problem(C, f"{name} publishes port {port.get('target')} on {port.get('host_ip') or 'every interface'}; publish on 127.0.0.1")


def published(name: str, target: int) -> str | None:
    for port in services.get(name, {}).get("ports", []):
        if port.get("target") == target:
            return str(port.get("published"))
    problem(C, f"{name} does not publish its port {target}")
    return None


env = {name: svc.get("environment") or {} for name, svc in services.items()}
raw_env = {name: svc.get("environment") or {} for name, svc in raw_services.items()}
setlist_env = env.get("setlist", {})
command = services.get("setlist", {}).get("command") or []


def flag(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


# PostgreSQL: the database, its port, the URLs that point at it.
expect(C, "postgres POSTGRES_DB", env.get("postgres", {}).get("POSTGRES_DB"), db_name, "scripts/postgres.sh")
expect(C, "postgres's published port", published("postgres", 5432), pg_port, "scripts/lib.sh")
db_url = urlparse(setlist_env.get("DATABASE_URL", ""))
expect(C, "setlist DATABASE_URL's database", db_url.path.lstrip("/"), db_name, "scripts/postgres.sh")
expect(C, "setlist DATABASE_URL's host", db_url.hostname, "postgres", "the postgres service")
expect(C, "setlist SETLIST_WAREHOUSE_DB", setlist_env.get("SETLIST_WAREHOUSE_DB"), db_name, "scripts/postgres.sh")
expect(C, "setlist SETLIST_WAREHOUSE_PORT", setlist_env.get("SETLIST_WAREHOUSE_PORT"), "5432", "the postgres service")
pg_major = services.get("postgres", {}).get("image", "").split(":")[-1].split("-")[0].split(".")[0]

# Kafka: KRaft, the host listener where scripts/kafka.sh's broker is, the topic.
kenv = env.get("kafka", {})
if not {"broker", "controller"} <= set(str(kenv.get("KAFKA_PROCESS_ROLES", "")).split(",")):
    problem(C, "kafka should run in KRaft mode as broker and controller (KAFKA_PROCESS_ROLES)")
expect(C, "kafka's published host listener port", published("kafka", 19092), kafka_port, "scripts/kafka.sh")
if f"127.0.0.1:{kafka_port}" not in str(kenv.get("KAFKA_ADVERTISED_LISTENERS", "")):
    problem(C, f"kafka should advertise 127.0.0.1:{kafka_port} to the host (KAFKA_ADVERTISED_LISTENERS)")
internal = re.search(r"INTERNAL://([\w.-]+:\d+)", str(kenv.get("KAFKA_ADVERTISED_LISTENERS", "")))
expect(C, "setlist SETLIST_KAFKA_BROKERS", setlist_env.get("SETLIST_KAFKA_BROKERS"),
       internal.group(1) if internal else None, "kafka's INTERNAL listener")
expect(C, "setlist SETLIST_TOPIC", setlist_env.get("SETLIST_TOPIC"), topic, "setlist config show")
expect(C, "setlist's --topic", flag(command, "--topic"), topic, "setlist config show")

# MinIO: the bucket, its port, the variables setlist reads.
expect(C, "minio's published S3 port", published("minio", 9000), s3_port, "scripts/s3.sh")
expect(C, "minio-init SETLIST_S3_BUCKET", env.get("minio-init", {}).get("SETLIST_S3_BUCKET"), bucket, "scripts/s3.sh")
expect(C, "setlist SETLIST_STORE_URL", setlist_env.get("SETLIST_STORE_URL"), f"s3://{bucket}", "scripts/s3.sh")
expect(C, "setlist's --store-url", flag(command, "--store-url"), f"s3://{bucket}", "scripts/s3.sh")
for var in s3_vars:
    if var not in setlist_env:
        problem(C, f"setlist does not set {var}, which scripts/s3.sh gives the binary")
if env.get("minio-init", {}).get("AWS_ACCESS_KEY_ID") != setlist_env.get("AWS_ACCESS_KEY_ID"):
    problem(C, "minio-init creates a different access key from the one setlist uses")

# setlist: the web on 0.0.0.0 inside, published on 127.0.0.1 with the scripts' port.
expect(C, "setlist's --web", flag(command, "--web"), f"0.0.0.0:{web_port}", "scripts/run.sh's port, on every interface inside")
expect(C, "setlist's published web port", published("setlist", int(web_port or 0)), web_port, "scripts/run.sh")
if f"127.0.0.1:{web_port}/healthz" not in json.dumps(services.get("setlist", {}).get("healthcheck", {})):
    problem(C, f"setlist's healthcheck should ask http://127.0.0.1:{web_port}/healthz")
if not setlist_env.get("SETLIST_API_TOKEN"):
    problem(C, "setlist should get SETLIST_API_TOKEN: it listens on 0.0.0.0")
for var in sorted(setlist_env):
    if var not in known_vars:
        problem(C, f"setlist sets {var}, which neither the binary, dbt/profiles.yml nor scripts/ read")
for var, default in profile_defaults.items():
    value = raw_env.get("setlist", {}).get(var)
    m = re.fullmatch(r"\$\{" + var + r":-([^}]*)\}", str(value)) if value is not None else None
    if m and m.group(1) != default and not (default == "unset" and m.group(1) == ""):
        problem(C, f"setlist passes {var} through with the default {m.group(1)!r}; dbt/profiles.yml's is {default!r}")

# Airflow: the adapter DAG folder and the Connection setlist_default.
airflow = services.get("airflow", {})
if airflow.get("profiles") != ["airflow"]:
    problem(C, "airflow should run only under the airflow profile")
if airflow_version:
    expect(C, "airflow's image", airflow.get("image"), f"apache/airflow:{airflow_version}", "scripts/airflow.sh")
mounts = {(v.get("source", "").removeprefix(str(ROOT) + "/"), v.get("target")) for v in airflow.get("volumes", [])}
if ("dags/airflow", "/opt/airflow/dags") not in mounts:
    problem(C, "airflow should mount dags/airflow/ at /opt/airflow/dags")
if (ROOT / "dags/airflow/plugins").is_dir() and ("dags/airflow/plugins", "/opt/airflow/plugins") not in mounts:
    problem(C, "airflow should mount dags/airflow/plugins/ at /opt/airflow/plugins (the adapter's operator and trigger)")
try:
    conn = json.loads(env.get("airflow", {}).get("AIRFLOW_CONN_SETLIST_DEFAULT", ""))
    expect(C, "the setlist_default Connection's host", conn.get("host"), "setlist", "the setlist service")
    expect(C, "the setlist_default Connection's port", str(conn.get("port")), web_port, "scripts/run.sh")
    # Says whether they differ, never what they are: both are secrets.
    if conn.get("password") != setlist_env.get("SETLIST_API_TOKEN"):
        problem(C, "the setlist_default Connection's password differs from setlist's SETLIST_API_TOKEN")
except json.JSONDecodeError as e:
    problem(C, f"AIRFLOW_CONN_SETLIST_DEFAULT is not JSON: {e}")
# With Airflow at hand (scripts/airflow.sh), the adapter itself reads the Connection.
if AIRFLOW_PYTHON and setlist_env.get("SETLIST_API_TOKEN"):
    code = """
try:
    from airflow.sdk import BaseHook
except ImportError:  # Airflow 2
    from airflow.hooks.base import BaseHook
import hashlib
import setlist_airflow
conn = BaseHook.get_connection("setlist_default")
print(setlist_airflow.base_url_of(conn))
print(hashlib.sha256((conn.password or "").encode()).hexdigest())  # the password itself stays out of logs
"""
    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run(
            [AIRFLOW_PYTHON, "-c", code], capture_output=True, text=True,
            env={**os.environ, "AIRFLOW_HOME": home, "PYTHONPATH": str(ROOT / "dags/airflow/plugins"),
                 "AIRFLOW_CONN_SETLIST_DEFAULT": env.get("airflow", {}).get("AIRFLOW_CONN_SETLIST_DEFAULT", "")})
    seen = out.stdout.strip().splitlines()[-2:]
    wanted = [f"http://setlist:{web_port}", hashlib.sha256(setlist_env["SETLIST_API_TOKEN"].encode()).hexdigest()]
    if out.returncode != 0 or seen != wanted:
        got = seen + [None] * (2 - len(seen))
        problem(C, f"the adapter (dags/airflow/plugins/setlist_airflow.py) reads the setlist_default Connection as "
                   f"{got[0]!r} with a password of SHA-256 {got[1]} (exit {out.returncode}), not {wanted[0]!r} with "
                   f"setlist's API token, SHA-256 {wanted[1]}: {out.stderr.strip()[-500:]}")
    else:
        print(f"The Airflow adapter reads the setlist_default Connection as {wanted[0]} with setlist's API token.")

# The one-shot services' shell scripts, as their shell will see them ($$ is compose's $).
for name, svc in services.items():
    entrypoint = svc.get("entrypoint") or []
    if entrypoint and entrypoint[0].endswith("sh") and svc.get("command"):
        script = "\n".join(svc["command"]).replace("$$", "$")
        out = subprocess.run(["shellcheck", "--shell=sh", "-"], input=script, capture_output=True, text=True)
        if out.returncode != 0:
            problem(C, f"shellcheck finds problems in {name}'s script:\n{out.stdout}")

# Secrets: only from variables; .env.example names each required one, with a placeholder.
SECRET = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE_KEY|ROOT_USER")
for name, variables in raw_env.items():
    for var, value in variables.items():
        value = "" if value is None else str(value)
        if SECRET.search(var) and value and not value.startswith("${"):
            problem(C, f"{name} sets the secret {var} to a literal; take it from a variable")
        for m in re.finditer(r"://[^:/@\s]*:([^@\s]*)@", value):
            if not m.group(1).startswith("${"):
                problem(C, f"{name}'s {var} has a literal password in its URL")
        if "password" in value and '"password": "${' not in value and var.startswith("AIRFLOW_CONN"):
            problem(C, f"{name}'s {var} has a literal password")
required = set(re.findall(r"\$\{(\w+):\?", read("docker-compose.yml")))
example = dict(re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", read(".env.example"), re.M))
for var in sorted(required - set(example)):
    problem(".env.example", f"does not set {var}, which docker-compose.yml requires")
for var, value in example.items():
    if SECRET.search(var) and "ROOT_USER" not in var and not value.startswith("change-me"):
        problem(".env.example", f"{var} holds {value!r}; a secret here must be a change-me placeholder")

# --- Dockerfile -----------------------------------------------------------------------

D = "Dockerfile"
dockerfile = read(D)
instructions: list[tuple[str, str]] = []
for line in re.sub(r"\\\n", " ", dockerfile).splitlines():
    line = line.strip()
    if line and not line.startswith("#"):
        word, _, rest = line.partition(" ")
        instructions.append((word.upper(), rest.strip()))
stages: list[list[tuple[str, str]]] = []
for word, rest in instructions:
    if word == "FROM":
        stages.append([])
    if stages:
        stages[-1].append((word, rest))
if len(stages) < 2:
    problem(D, "should be a multi-stage build")
else:
    args = {m.group(1): m.group(2) for w, r in instructions if w == "ARG"
            for m in [re.match(r"(\w+)=(\S+)", r)] if m}

    def subst(text: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), text)

    runtime = stages[-1]
    froms = [subst(s[0][1]).split()[0] for s in stages]
    if not re.fullmatch(r"debian:[\w.-]+-slim", froms[-1]):
        problem(D, f"the runtime stage is FROM {froms[-1]}; use debian:<release>-slim")
    build_runs = " ".join(r for s in stages[:-1] for w, r in s if w == "RUN")
    if not re.search(r"cargo build --release --locked\b.*--bin setlist", build_runs):
        problem(D, "no build stage runs cargo build --release --locked ... --bin setlist")
    rust = re.match(r"rust:([\d.]+)-", froms[0])
    rust_version = rust.group(1) if rust else None
    for pkg, pin in dbt_pins.items():
        arg = {"dbt-core": "DBT_CORE_VERSION", "dbt-postgres": "DBT_POSTGRES_VERSION",
               "dbt-snowflake": "DBT_SNOWFLAKE_VERSION"}[pkg]
        expect(D, f"ARG {arg}", args.get(arg), pin, "scripts/dbt.sh")
    venv_stage = next((froms[i] for i, s in enumerate(stages[:-1]) if "/opt/dbt" in " ".join(r for _, r in s)), None)
    if venv_stage != froms[-1]:
        problem(D, f"the dbt virtualenv is made FROM {venv_stage}, the runtime is FROM {froms[-1]}: a venv only runs on the Python it was made with")
    runtime_text = " ".join(r for _, r in runtime)
    for need in ("python3", "ca-certificates"):
        if need not in runtime_text:
            problem(D, f"the runtime stage does not install {need}")
    # rdkafka's features decide what the binary links dynamically.
    cargo = read("Cargo.toml")
    rdkafka = one(r"^rdkafka = (.*)$", cargo, "Cargo.toml", "the rdkafka dependency", re.M) or ""
    for feature, lib in (("dynamic-linking", "librdkafka1"), ("dynamic_linking", "librdkafka1"), ("ssl", "libssl3"),
                         ("gssapi", "libsasl2-2"), ("sasl", "libsasl2-2"), ("libz", "zlib1g"), ("zstd-pkg-config", "libzstd1")):
        default_on = feature == "libz" and "default-features = false" not in rdkafka
        if (f'"{feature}"' in rdkafka or default_on) and lib not in runtime_text:
            problem(D, f"rdkafka's feature {feature} links {lib} at run time; the runtime stage does not install it")
    users = [r for w, r in runtime if w == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problem(D, "the runtime stage should end as a non-root USER")
    healthchecks = [r for w, r in runtime if w == "HEALTHCHECK"]
    if not healthchecks or f"127.0.0.1:{web_port}/healthz" not in healthchecks[-1]:
        problem(D, f"the runtime stage needs a HEALTHCHECK on http://127.0.0.1:{web_port}/healthz")
    if web_port not in " ".join(r for w, r in runtime if w == "EXPOSE").split():
        problem(D, f"the runtime stage should EXPOSE {web_port}")
    cmd = [json.loads(r) for w, r in runtime if w == "CMD"]
    if not cmd or flag(cmd[-1], "--web") != f"0.0.0.0:{web_port}":
        problem(D, f"CMD should say --web 0.0.0.0:{web_port}: inside a container the server must listen on every interface")
    for what in ("dags", "dbt"):
        if not any(w == "COPY" and r.split()[0] == what for w, r in runtime):
            problem(D, f"the runtime stage does not COPY {what}/")
    for w, r in instructions:
        if w in ("ENV", "ARG"):
            for var, value in re.findall(r"(\w+)=(\S*)", r):
                if SECRET.search(var) and value:
                    problem(D, f"{w} {var} bakes a secret into the image")
                if w == "ENV" and re.match(r"(SETLIST|SNOWFLAKE|AWS|DBT)_|DATABASE_URL", var) and var not in known_vars:
                    problem(D, f"ENV {var} is not a variable the binary, dbt or scripts/ read")
    ignore = read(".dockerignore").split()
    for entry in ("target/", ".git/", ".setlist/", ".env"):
        if entry not in ignore:
            problem(".dockerignore", f"does not exclude {entry}")

# --- The workflow ---------------------------------------------------------------------

W = ".github/workflows/ci.yml"
try:
    from ruamel.yaml import YAML

    workflow = YAML(typ="safe").load(read(W)) or {}
except Exception as e:  # a parse error is the schema check's to report; say it here too
    problem(W, f"cannot parse: {e}")
    workflow = {}
for job_name, job in (workflow.get("jobs") or {}).items():
    steps = job.get("steps") or []
    if not any(str(s.get("run", "")).strip() == ".ci/run" for s in steps):
        problem(W, f"job {job_name} does not run .ci/run (the README's test command)")
    caches = [s.get("with", {}) for s in steps if str(s.get("uses", "")).startswith("actions/cache@")]
    paths = "\n".join(str(c.get("path", "")) for c in caches)
    keys = " ".join(str(c.get("key", "")) for c in caches)
    for path in ("~/.cache/setlist/tools", "~/.cargo/registry", "target"):
        if path not in paths:
            problem(W, f"job {job_name} does not cache {path}")
    for keyed in ("Cargo.lock", "scripts/*.sh"):
        if keyed not in keys:
            problem(W, f"job {job_name}'s caches are not keyed on {keyed}")
    toolchain = str((workflow.get("env") or {}).get("RUST_TOOLCHAIN") or (job.get("env") or {}).get("RUST_TOOLCHAIN"))
    if stages and rust_version and not toolchain.startswith(rust_version):
        problem(W, f"job {job_name} uses Rust {toolchain}, the Dockerfile builds with {rust_version}")
    pg = (job.get("services") or {}).get("postgres")
    if pg:
        expect(W, f"job {job_name}'s PostgreSQL major version", str(pg.get("image", "")).split(":")[-1].split("-")[0].split(".")[0],
               pg_major, "docker-compose.yml")
        if f"{pg_port}:5432" not in [str(p) for p in pg.get("ports", [])]:
            problem(W, f"job {job_name}'s PostgreSQL should publish {pg_port}:5432, where scripts/postgres.sh looks")
        if (pg.get("env") or {}).get("POSTGRES_HOST_AUTH_METHOD") != "trust":
            problem(W, f"job {job_name}'s PostgreSQL must take user postgres without a password (scripts/postgres.sh)")

# --- BI files -------------------------------------------------------------------------

for rel, protocol in (("bi/setlist-gold-postgres.pbids", "postgresql"), ("bi/setlist-gold-snowflake.pbids", "snowflake")):
    try:
        pbids = json.loads(read(rel) or "{}")
        details = pbids["connections"][0]["details"]
        expect(rel, "the protocol", details["protocol"], protocol, "Power BI's connector")
        if pbids["connections"][0].get("mode") not in ("Import", "DirectQuery"):
            problem(rel, "mode should be Import or DirectQuery")
        if protocol == "postgresql":
            expect(rel, "the database", details["address"].get("database"), db_name, "scripts/postgres.sh")
            expect(rel, "the server's port", details["address"].get("server", "").rsplit(":", 1)[-1], pg_port, "scripts/lib.sh")
        elif not details["address"].get("server"):
            problem(rel, "names no server")
    except (KeyError, IndexError, TypeError, json.JSONDecodeError) as e:
        problem(rel, f"is not a Power BI data source file (version, connections[0].details.protocol/address): {e!r}")

bi_md = read("docs/bi.md")
for model in sorted((ROOT / "dbt/models/marts").glob("*.sql")):
    sql = model.read_text()
    section = re.search(rf"^#+ `?{model.stem}`?\s*$(.*?)(?=^#+ |\Z)", bi_md, re.M | re.S)
    if not section:
        problem("docs/bi.md", f"has no section for the gold model {model.stem}")
        continue
    # A model that calls a macro of the project has that macro's columns too.
    for called in set(re.findall(r"\{%-?\s*(?:call\s+)?(\w+)\(|\{\{-?\s*(\w+)\(", sql)):
        for name in called:
            macro = ROOT / "dbt/macros" / f"{name}.sql"
            if name and macro.exists():
                sql += macro.read_text()
    identifiers = set(re.findall(r"\w+", sql))
    for column in re.findall(r"^\| `(\w+)` \|", section.group(1), re.M):
        if column not in identifiers:
            problem("docs/bi.md", f"documents {model.stem}.{column}, which dbt/models/marts/{model.name} does not have")
readme = read("README.md")
first_block = re.search(r"```sh\n(.*?)```", readme, re.S)
if not first_block or "scripts/run.sh" not in first_block.group(1) or "scripts/test.sh" not in first_block.group(1):
    problem("README.md", "should still start with its two commands")
for target in ("docs/bi.md", "docker-compose.yml"):
    if target not in readme:
        problem("README.md", f"does not point to {target}")

if problems:
    print(f"{len(problems)} problem(s) in the deployment files:", file=sys.stderr)
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    sys.exit(1)
print("Deployment files are in step with scripts/ and the binary.")
