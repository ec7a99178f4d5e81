#!/usr/bin/env bash
# Makes sure Apache Airflow 3.3.2 (with its PostgreSQL driver) is installed in a
# virtualenv under $SETLIST_HOME/tools, created once per machine and reused, with every
# dependency pinned by scripts/airflow-constraints-3.3.2.txt. The Airflow tests
# (tests/airflow.rs) start their own Airflow from it in a temporary AIRFLOW_HOME.
# Prints the airflow binary's path as SETLIST_AIRFLOW.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

spec="apache-airflow[postgres]==3.3.2"
constraints="$(cd "$(dirname "$0")" && pwd)/airflow-constraints-3.3.2.txt"
venv="$SETLIST_HOME/tools/airflow-3.3.2"
pins="$spec constraints-sha256=$(sha256sum "$constraints" | cut -c1-64)"
# The marker, written last, holds the pins that were installed. Other pins (a changed
# constraints file) build the virtualenv again from nothing; an install that was
# interrupted, with no marker yet, is resumed (pip keeps what is already there).
installed="$(cat "$venv/.installed" 2>/dev/null || true)"
if [ "$installed" != "$pins" ]; then
    say "Installing $spec into $venv with the pins of $(basename "$constraints") (a minute or two)."
    [ -z "$installed" ] || rm -rf "$venv"
    [ -x "$venv/bin/pip" ] || { rm -rf "$venv"; python3 -m venv "$venv"; }
    "$venv/bin/pip" install --quiet --constraint "$constraints" "$spec"
    echo "$pins" >"$venv/.installed"
fi
echo "SETLIST_AIRFLOW=$venv/bin/airflow"
