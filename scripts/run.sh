#!/usr/bin/env bash
# Installs what is missing and runs Setlist locally: PostgreSQL, then `setlist standalone`
# (scheduler and workers) with the DAGs in dags/. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

eval "$(scripts/postgres.sh)"
export DATABASE_URL
say "Building setlist (release)."
cargo build --release --locked --bin setlist
bin=target/release/setlist
$bin db migrate
$bin dags validate || say "Some DAG files have problems (above); the others run."
say "Starting setlist standalone; in another shell: $bin runs list"
exec $bin standalone --dags-dir dags
