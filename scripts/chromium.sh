#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed for the headless page tests, and prints
# its path as SETLIST_CHROMIUM.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if ! command -v chromium >/dev/null; then
    apt_install chromium
fi
echo "SETLIST_CHROMIUM=$(command -v chromium)"
