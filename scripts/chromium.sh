#!/usr/bin/env bash
# Makes sure Debian's Chromium and ChromeDriver are installed for the headless page
# tests, and prints their paths as SETLIST_CHROMIUM and SETLIST_CHROMEDRIVER.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt_install chromium chromium-driver
fi
echo "SETLIST_CHROMIUM=$(command -v chromium)"
echo "SETLIST_CHROMEDRIVER=$(command -v chromedriver)"
