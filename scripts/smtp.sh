#!/usr/bin/env bash
# Makes sure a local SMTP sink answers on 127.0.0.1:$SETLIST_SMTP_PORT (default 18025)
# for the tests of email notifications: aiosmtpd from PyPI in a virtualenv under
# $SETLIST_HOME/tools, keeping every message it takes in a Maildir. Prints
# SETLIST_SMTP (host:port) and SETLIST_SMTP_MAILDIR. Idempotent.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

port="${SETLIST_SMTP_PORT:-18025}"
venv="$SETLIST_HOME/tools/aiosmtpd-1.4.6"
maildir="$SETLIST_HOME/smtp/maildir"
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if ! answers; then
    if [ ! -x "$venv/bin/aiosmtpd" ]; then
        say "Installing aiosmtpd 1.4.6 into $venv."
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet aiosmtpd==1.4.6
    fi
    mkdir -p "$maildir/tmp" "$maildir/new" "$maildir/cur"
    say "Starting an SMTP sink on 127.0.0.1:$port (mail kept in $maildir)."
    nohup "$venv/bin/aiosmtpd" -n -l "127.0.0.1:$port" -c aiosmtpd.handlers.Mailbox "$maildir" \
        >"$SETLIST_HOME/smtp.log" 2>&1 </dev/null &
    echo $! >"$SETLIST_HOME/smtp.pid"
    for _ in $(seq 1 100); do answers && break; sleep 0.1; done
fi
answers || die "The SMTP sink does not answer on 127.0.0.1:$port (see $SETLIST_HOME/smtp.log)."
echo "SETLIST_SMTP=127.0.0.1:$port"
echo "SETLIST_SMTP_MAILDIR=$maildir"
