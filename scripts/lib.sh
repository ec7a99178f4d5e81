# Shared settings for the scripts in this folder; sourced, not run.
# Tools and data that outlive a clone (so CI's second run reuses them) live here:
SETLIST_HOME="${SETLIST_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/setlist}"
SETLIST_PG_PORT="${SETLIST_PG_PORT:-5432}"
export SETLIST_HOME SETLIST_PG_PORT
mkdir -p "$SETLIST_HOME"

say() { printf '\033[1m[setlist]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[setlist] %s\033[0m\n' "$*" >&2; exit 1; }

# Installs Debian packages that are missing, as root or through sudo.
apt_install() {
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    say "Installing $* with apt-get."
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
