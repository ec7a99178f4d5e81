#!/usr/bin/env bash
# Makes sure a Kafka-protocol broker answers on 127.0.0.1:$SETLIST_KAFKA_PORT (default
# 19092): tansu, an Apache-Kafka-compatible broker from crates.io, with in-memory
# storage. The binary is built once per machine into $SETLIST_HOME/tools (about 8
# minutes on 2 cores) and reused by every clone, CI included. Idempotent.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

port="${SETLIST_KAFKA_PORT:-19092}"
version=0.6.0
root="$SETLIST_HOME/tools/tansu-$version"
bin="$root/bin/tansu"

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if ! answers; then
    if [ ! -x "$bin" ]; then
        say "Building tansu $version into $root (once per machine, about 8 minutes on 2 cores)."
        cargo install tansu --locked --version "$version" --features dynostore --root "$root" --quiet
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
