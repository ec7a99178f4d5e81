#!/usr/bin/env bash
# Makes sure Apache Airflow 3.3.2 (with its PostgreSQL driver) is installed in a
# virtualenv under $SETLIST_HOME/tools, created once per machine and reused. The Airflow
# tests (tests/airflow.rs) start their own Airflow from it in a temporary AIRFLOW_HOME.
# Prints the airflow binary's path as SETLIST_AIRFLOW.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

spec="apache-airflow[postgres]==3.3.2"
venv="$SETLIST_HOME/tools/airflow-3.3.2"
# The marker, written last, holds what was installed: an install that was interrupted,
# or one of another spec, is (re)done; pip keeps what is already there.
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$spec" ]; then
    say "Installing $spec into $venv (under a minute)."
    [ -x "$venv/bin/pip" ] || { rm -rf "$venv"; python3 -m venv "$venv"; }
    "$venv/bin/pip" install --quiet "$spec"
    echo "$spec" >"$venv/.installed"
fi
echo "SETLIST_AIRFLOW=$venv/bin/airflow"
