"""Runs dbt commands for Setlist in one long-lived process.

A new `dbt` process spends about two seconds importing dbt and its adapters before
it does anything; a pipeline that runs dbt twice a minute would spend a good part of
its cycle there. This process imports dbt once and then runs one command per line
of standard input, a JSON list of the command's arguments, with dbt's own
programmatic entry point (dbtRunner). dbt's log goes to standard output as the CLI
writes it; each command ends with one line that starts with the marker below and
holds a JSON verdict: {"success": bool, "error": str or null}.
"""

import json
import os
import sys

MARK = "\x1esetlist-dbt "

# One ordered stream: warnings and tracebacks go where dbt's log goes.
os.dup2(1, 2)
sys.stderr = sys.stdout


def verdict(**fields):
    sys.stdout.flush()
    print(MARK + json.dumps(fields), flush=True)


def main():
    from dbt.cli.main import dbtRunner

    runner = dbtRunner()
    verdict(ready=True)
    for line in sys.stdin:
        args = json.loads(line)
        try:
            result = runner.invoke(args)
            error = None if result.exception is None else f"{type(result.exception).__name__}: {result.exception}"
            verdict(success=bool(result.success), error=error)
        except BaseException as e:  # dbt may raise SystemExit; the next command still runs
            verdict(success=False, error=f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
