#!/usr/bin/env bash
# Makes sure a Snowflake emulator answers on 127.0.0.1:$SETLIST_FAKESNOW_PORT (default
# 18444) for the tests of the Snowflake path: fakesnow from PyPI (Snowflake's wire
# protocol over DuckDB) in a virtualenv under $SETLIST_HOME/tools, behind a small layer
# that answers JSON rowsets (scripts/fakesnow/json_rowsets.py). Prints the SNOWFLAKE_*
# variables that point the Snowflake warehouse and dbt's `fake` target at it.
# Idempotent. Real Snowflake needs none of this: set SNOWFLAKE_ACCOUNT and friends.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

port="${SETLIST_FAKESNOW_PORT:-18444}"
venv="$SETLIST_HOME/tools/fakesnow-0.12.1"
data="$SETLIST_HOME/fakesnow"
layer="$(cd "$(dirname "$0")" && pwd)/fakesnow/json_rowsets.py"
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if ! answers; then
    if [ ! -x "$venv/bin/fakesnow" ]; then
        say "Installing fakesnow 0.12.1 into $venv."
        python3 -m venv "$venv"
        # The connector's 5.x removed a module fakesnow imports.
        "$venv/bin/pip" install --quiet "fakesnow[server]==0.12.1" snowflake-connector-python==4.8.1 duckdb==2.0.1
    fi
    mkdir -p "$data"
    say "Starting fakesnow on 127.0.0.1:$port."
    (cd "$data" && FAKESNOW_DB_PATH="$data" exec nohup "$venv/bin/python" "$layer" "$port" \
        >"$SETLIST_HOME/fakesnow.log" 2>&1 </dev/null) &
    echo $! >"$SETLIST_HOME/fakesnow.pid"
    for _ in $(seq 1 100); do answers && break; sleep 0.1; done
fi
answers || die "fakesnow does not answer on 127.0.0.1:$port (see $SETLIST_HOME/fakesnow.log)."
echo "SETLIST_FAKESNOW_URL=http://127.0.0.1:$port"
