#!/usr/bin/env bash
# Makes sure schemathesis (property-based tests of an API against its OpenAPI
# document) is installed in a virtualenv under $SETLIST_HOME/tools, created once
# and reused. Prints its path as SETLIST_SCHEMATHESIS.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

venv="$SETLIST_HOME/tools/schemathesis-4.32.5"
if [ ! -x "$venv/bin/schemathesis" ]; then
    say "Installing schemathesis 4.32.5 into $venv."
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet schemathesis==4.32.5
fi
echo "SETLIST_SCHEMATHESIS=$venv/bin/schemathesis"
