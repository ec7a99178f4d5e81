#!/usr/bin/env bash
# Installs what is missing and runs Setlist locally: PostgreSQL and the Kafka-protocol
# broker and dbt, then `setlist standalone`: scheduler, workers, the simulator (1,000
# plays/s, SETLIST_SIMULATE_RATE to change), the lander (into .setlist/lake) and the
# spotify_pipeline DAG every minute (bronze, then dbt silver and gold), and the REST
# API on http://127.0.0.1:8080 (SETLIST_WEB to change). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

eval "$(scripts/postgres.sh)"
# dbt's virtualenv installs while cargo builds.
scripts/dbt.sh >"${TMPDIR:-/tmp}/setlist-dbt.env" &
dbt_install=$!
# The broker and setlist in one cargo invocation: the crates they share (tokio, hyper,
# rustls, aws-lc, zstd, serde ...) compile once (bench/README.md, "First run").
packages=(-p setlist)
what="setlist"
if [ ! -x "$SETLIST_HOME/tools/tansu-0.6.0/bin/tansu" ]; then
    packages+=(-p setlist-broker)
    what="setlist and the broker (once per machine)"
fi
say "Building $what (release)."
cargo build --release --locked "${packages[@]}"
eval "$(SETLIST_BROKER_BIN="$PWD/target/release/setlist-broker" scripts/kafka.sh)"
wait "$dbt_install" || die "Installing dbt failed (scripts/dbt.sh)."
eval "$(cat "${TMPDIR:-/tmp}/setlist-dbt.env")"
export DATABASE_URL SETLIST_KAFKA_BROKERS SETLIST_DBT
export SETLIST_STORE_URL="${SETLIST_STORE_URL:-$PWD/.setlist/lake}" SETLIST_DBT_PROJECT="$PWD/dbt"
bin=target/release/setlist
$bin db migrate
$bin dags validate || say "Some DAG files have problems (above); the others run."
say "Starting setlist standalone; in another shell: $bin runs list"
exec $bin standalone --dags-dir dags --simulate-rate "${SETLIST_SIMULATE_RATE:-1000}" --land --store-url "$SETLIST_STORE_URL" \
    --web "${SETLIST_WEB:-127.0.0.1:8080}"
