#!/usr/bin/env bash
# Installs what is missing and runs Setlist locally: PostgreSQL and the Kafka-protocol
# broker, then `setlist standalone`: scheduler, workers, the simulator (1,000 plays/s,
# SETLIST_SIMULATE_RATE to change) and the lander (into .setlist/lake). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

eval "$(scripts/postgres.sh)"
eval "$(scripts/kafka.sh)"
export DATABASE_URL SETLIST_KAFKA_BROKERS
say "Building setlist (release)."
cargo build --release --locked --bin setlist
bin=target/release/setlist
$bin db migrate
$bin dags validate || say "Some DAG files have problems (above); the others run."
say "Starting setlist standalone; in another shell: $bin runs list"
exec $bin standalone --dags-dir dags --simulate-rate "${SETLIST_SIMULATE_RATE:-1000}" --land --store-url "${SETLIST_STORE_URL:-.setlist/lake}"
