#!/usr/bin/env bash
# Makes sure PostgreSQL answers on 127.0.0.1:$SETLIST_PG_PORT (default 5432), creates the
# `setlist` database and prints the connection URLs. Idempotent: when the server
# already answers, it only checks the database and prints.
#
# Order of attempts: a server that already answers; a Debian cluster on that port
# (pg_ctlcluster); otherwise a project-owned cluster in $SETLIST_HOME/pg (initdb),
# installing Debian's postgresql package first when no server binaries exist.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

port="$SETLIST_PG_PORT"
answers() { pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null; }

command -v pg_isready >/dev/null || apt_install postgresql-client
if ! answers; then
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$bin" ]; then
        apt_install postgresql
        bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
        # The package makes (and may start) a cluster of its own that wants passwords
        # over TCP; it is new and empty, so drop it and keep the project's own below
        # (trust, 127.0.0.1 only).
        sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        pg_lsclusters --no-header 2>/dev/null | while read -r version name _; do
            say "Dropping the empty cluster $version/$name that the postgresql package made."
            $sudo pg_dropcluster --stop "$version" "$name"
        done
    fi
    cluster=$(pg_lsclusters --no-header 2>/dev/null | awk -v p="$port" '$3 == p {print $1, $2; exit}' || true)
    if [ -n "$cluster" ]; then
        say "Starting the Debian cluster $cluster."
        # shellcheck disable=SC2086
        pg_ctlcluster --skip-systemctl-redirect $cluster start || true
    fi
fi
if ! answers; then
    data="$SETLIST_HOME/pg/data"
    run_as=()
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir "$SETLIST_HOME/pg" postgres
        run_as=(runuser -u postgres --)
    fi
    mkdir -p "$SETLIST_HOME/pg"
    [ "$(id -u)" = 0 ] && chown postgres "$SETLIST_HOME/pg"
    if [ ! -f "$data/PG_VERSION" ]; then
        say "Creating a PostgreSQL cluster in $data."
        "${run_as[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    say "Starting PostgreSQL on 127.0.0.1:$port ($data)."
    "${run_as[@]}" "$bin/pg_ctl" -D "$data" -l "$SETLIST_HOME/pg/server.log" -w \
        -o "-p $port -c listen_addresses=127.0.0.1 -k /tmp" start >/dev/null
fi
answers || die "PostgreSQL does not answer on 127.0.0.1:$port (see $SETLIST_HOME/pg/server.log)."

admin="postgres://postgres@127.0.0.1:$port/postgres"
psql -q "$admin" -c 'SELECT 1' >/dev/null 2>&1 ||
    die "PostgreSQL answers on 127.0.0.1:$port but refuses user postgres without a password; allow trust for 127.0.0.1 in pg_hba.conf or set DATABASE_URL and SETLIST_TEST_DATABASE_URL."
if [ "$(psql -qtA "$admin" -c "SELECT 1 FROM pg_database WHERE datname = 'setlist'")" != 1 ]; then
    psql -q "$admin" -c 'CREATE DATABASE setlist' >/dev/null
    say "Created database setlist."
fi
echo "DATABASE_URL=postgres://postgres@127.0.0.1:$port/setlist"
echo "SETLIST_TEST_DATABASE_URL=$admin"
