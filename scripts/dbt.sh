#!/usr/bin/env bash
# Makes sure dbt (dbt-core 1.11 with the postgres and snowflake adapters) is installed
# in a virtualenv under $SETLIST_HOME/tools, created once per machine and reused.
# dbt-core 1.12 cannot install offline (it downloads a parser wheel at build time).
# Prints the dbt binary's path as SETLIST_DBT.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

venv="$SETLIST_HOME/tools/dbt-1.11"
if [ ! -x "$venv/bin/dbt" ]; then
    say "Installing dbt-core 1.11 with dbt-postgres and dbt-snowflake into $venv."
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet dbt-core==1.11.16 dbt-postgres==1.10.2 dbt-snowflake==1.10.8
fi
echo "SETLIST_DBT=$venv/bin/dbt"
