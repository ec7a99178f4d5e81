#!/usr/bin/env bash
# Makes sure sqlx-cli (`cargo sqlx`) is installed under $SETLIST_HOME/tools, built once
# per machine (about two minutes on 2 cores) and reused by every clone, CI included.
# scripts/test.sh uses it to check that .sqlx/ (the state store's queries, checked at
# compile time) matches the queries and the migrations. Prints its folder as
# SETLIST_SQLX_BIN. Idempotent.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

version=0.8.6
root="$SETLIST_HOME/tools/sqlx-cli-$version"
if [ ! -x "$root/bin/cargo-sqlx" ]; then
    say "Building sqlx-cli $version into $root (once per machine)."
    cargo install sqlx-cli --version "$version" --no-default-features --features postgres,rustls \
        --locked --quiet --root "$root"
fi
echo "SETLIST_SQLX_BIN=$root/bin"
