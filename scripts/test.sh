#!/usr/bin/env bash
# Installs what is missing, then runs every check and test: formatting, clippy, and the
# whole workspace's tests against real servers. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

eval "$(scripts/postgres.sh)"
eval "$(scripts/kafka.sh)"
eval "$(scripts/s3.sh)"
eval "$(scripts/dbt.sh)"
eval "$(scripts/snowflake.sh)"
eval "$(scripts/schemathesis.sh)"
eval "$(scripts/chromium.sh)"
eval "$(scripts/airflow.sh)"
eval "$(scripts/sqlx.sh)"
eval "$(scripts/smtp.sh)"
export DATABASE_URL SETLIST_TEST_DATABASE_URL SETLIST_KAFKA_BROKERS SETLIST_DBT SETLIST_SCHEMATHESIS SETLIST_CHROMIUM SETLIST_CHROMEDRIVER SETLIST_AIRFLOW SETLIST_SMTP SETLIST_SMTP_MAILDIR

# Each test makes its own database named setlist_t_*; drop the ones earlier runs left,
# also when a process an earlier run left behind is still connected (PostgreSQL 13+).
psql -qtA "$SETLIST_TEST_DATABASE_URL" -c "SELECT datname FROM pg_database WHERE datname LIKE 'setlist\_t\_%'" |
    while read -r db; do psql -q "$SETLIST_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null; done

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy"
# The workspace's default members: every crate but the broker, which scripts/kafka.sh
# builds (clippy on tansu's 400 crates would cost minutes and lint nothing of ours).
cargo clippy --all-targets --locked -- -D warnings
say "cargo test"
# A hung test must fail CI loudly, well inside its 90 minutes, not eat them all;
# cargo test names any test still running after 60 s in the log.
status=0
timeout --signal=TERM --kill-after=30s "${SETLIST_TEST_TIMEOUT:-40m}" \
    cargo test --locked --no-fail-fast 2>&1 | tee "${TMPDIR:-/tmp}/setlist-test.log" || status=$?
[ "$status" != 124 ] || die "The tests did not finish within ${SETLIST_TEST_TIMEOUT:-40m} (see the slow tests named above)."
# The compile-time checked queries' data (.sqlx/) against the queries and migrations:
# a fresh database migrated by the binary the tests built.
say "cargo sqlx prepare --check"
sqlx_db="setlist_t_sqlx_$$"
psql -q "$SETLIST_TEST_DATABASE_URL" -c "CREATE DATABASE $sqlx_db" >/dev/null
sqlx_url="${SETLIST_TEST_DATABASE_URL%/*}/$sqlx_db"
if ! { target/debug/setlist --database-url "$sqlx_url" db migrate >/dev/null &&
    DATABASE_URL="$sqlx_url" PATH="$SETLIST_SQLX_BIN:$PATH" cargo sqlx prepare --workspace --check; }; then
    say "The .sqlx/ query data is stale: run DATABASE_URL=<a migrated database> cargo sqlx prepare --workspace"
    status=1
fi
psql -q "$SETLIST_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS $sqlx_db WITH (FORCE)" >/dev/null
# After the tests: they built the binary whose settings the deployment files must match.
say "deployment files: Dockerfile, docker-compose.yml, CI workflow, BI (scripts/deploy-check.sh)"
SETLIST_BIN=target/debug/setlist scripts/deploy-check.sh || status=$?
exit "$status"
