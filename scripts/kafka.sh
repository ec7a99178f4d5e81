#!/usr/bin/env bash
# Makes sure a Kafka-protocol broker answers on 127.0.0.1:$SETLIST_KAFKA_PORT (default
# 19092): tansu 0.6.0, an Apache-Kafka-compatible broker from crates.io, with in-memory
# storage, built as the workspace's `setlist-broker` (broker/). The binary is kept in
# $SETLIST_HOME/tools and reused by every clone, CI included. scripts/run.sh builds it
# in the same cargo invocation as setlist, so the crates both use compile once, and
# hands it over as SETLIST_BROKER_BIN; alone, this builds it (a few minutes on 2 cores).
# Idempotent.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root="$(cd "$(dirname "$0")/.." && pwd)"

port="${SETLIST_KAFKA_PORT:-19092}"
version=0.6.0
bin="$SETLIST_HOME/tools/tansu-$version/bin/tansu"

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if ! answers; then
    if [ ! -x "$bin" ]; then
        built="${SETLIST_BROKER_BIN:-}"
        if [ -z "$built" ]; then
            say "Building the broker (tansu $version, broker/) once per machine; a few minutes on 2 cores."
            (cd "$root" && cargo build --release --locked --quiet -p setlist-broker)
            built="$root/target/release/setlist-broker"
        fi
        mkdir -p "$(dirname "$bin")"
        install -m 0755 "$built" "$bin"
    fi
    say "Starting tansu on 127.0.0.1:$port (memory storage)."
    nohup "$bin" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ \
        >"$SETLIST_HOME/tansu.log" 2>&1 </dev/null &
    echo $! >"$SETLIST_HOME/tansu.pid"
    for _ in $(seq 1 100); do answers && break; sleep 0.1; done
fi
answers || die "tansu does not answer on 127.0.0.1:$port (see $SETLIST_HOME/tansu.log)."
echo "SETLIST_KAFKA_BROKERS=127.0.0.1:$port"
