"""Reads a folder of Airflow DAG files with Airflow's own parser (DagBag) and prints
what `setlist airflow import` translates, as JSON: each DAG's schedule and defaults,
and each task's operator, dependencies, retry policy, group and the fields of the
operators Setlist has a kind for. Run by the importer with the Python of an Airflow
installation; it imports nothing of Setlist's."""

import datetime
import inspect
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import logging  # noqa: E402

logging.disable(logging.CRITICAL)

from airflow.models.dagbag import DagBag  # noqa: E402

# Operator fields worth carrying over, by class name (subclasses match by their MRO).
FIELDS = {
    "BashOperator": ["bash_command", "env", "cwd"],
    "SQLExecuteQueryOperator": ["sql", "conn_id", "autocommit", "parameters"],
    "HttpOperator": ["endpoint", "method", "data", "headers", "http_conn_id"],
    "HttpSensor": ["endpoint", "method", "request_params", "headers", "http_conn_id"],
    "S3KeySensor": ["bucket_key", "bucket_name", "wildcard_match", "aws_conn_id"],
    "FileSensor": ["filepath", "fs_conn_id"],
    "SqlSensor": ["sql", "conn_id"],
    "ExternalTaskSensor": ["external_dag_id", "external_task_id", "execution_delta", "allowed_states", "failed_states"],
    "TimeDeltaSensor": ["delta"],
    "DateTimeSensor": ["target_time"],
    "TriggerDagRunOperator": ["trigger_dag_id", "conf", "wait_for_completion", "poke_interval", "logical_date"],
    "EmailOperator": ["to", "subject", "html_content", "conn_id"],
    "SlackWebhookOperator": ["slack_webhook_conn_id", "message"],
    "ShortCircuitOperator": ["ignore_downstream_trigger_rules", "op_args", "op_kwargs"],
    "PythonOperator": ["op_args", "op_kwargs"],
    "ExternalPythonOperator": ["python"],
    "PythonVirtualenvOperator": ["requirements"],
}


def plain(v):
    """A JSON value for `v`: durations as seconds, times as RFC 3339, the rest as text."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, datetime.timedelta):
        return {"seconds": v.total_seconds()}
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    if isinstance(v, (list, tuple, set)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if hasattr(v, "operator") and hasattr(v, "key"):  # an XComArg
        return {"xcom": getattr(v.operator, "task_id", None), "key": v.key}
    return {"repr": repr(v)[:200], "type": type(v).__name__}


def callable_ref(f):
    if f is None:
        return None
    try:
        file, line = inspect.getsourcefile(f), inspect.getsourcelines(f)[1]
    except (TypeError, OSError):
        file, line = None, None
    module = getattr(f, "__module__", None) or ""
    return {
        "module": module,
        "name": getattr(f, "__qualname__", getattr(f, "__name__", None)),
        "file": file,
        "line": line,
        # DagBag loads DAG files under made-up module names: what they define cannot
        # be imported by another process.
        "importable": bool(module) and not module.startswith("unusual_prefix") and module != "__main__",
    }


def schedule(dag):
    tt = dag.timetable
    name = type(tt).__name__
    if name in ("CronTriggerTimetable", "CronDataIntervalTimetable"):
        expression = getattr(tt, "_expression", None) or getattr(tt, "expression", None)
        timezone = getattr(tt, "_timezone", None) or getattr(tt, "timezone", "UTC")
        return {"cron": expression, "timezone": getattr(timezone, "name", str(timezone)), "timetable": name}
    if name == "NullTimetable":
        return {"none": True}
    if name in ("DeltaDataIntervalTimetable", "DeltaTriggerTimetable"):
        delta = getattr(tt, "_delta", None)
        return {"every": plain(delta), "timetable": name}
    return {"other": name}


def task(t):
    mapped = type(t).__name__ in ("MappedOperator", "DecoratedMappedOperator")
    cls = t.operator_class if mapped else type(t)
    if isinstance(cls, dict):  # a serialized operator class
        names = [cls.get("task_type") or cls.get("_task_type") or "?"]
        mro = []
    else:
        mro = [c.__name__ for c in getattr(cls, "__mro__", [cls])]
        names = mro
    fields = {}
    source = t.partial_kwargs if mapped else t.__dict__
    for cname in names:
        for f in FIELDS.get(cname, []):
            if f in source:
                fields[f] = plain(source[f])
            elif not mapped and hasattr(t, f):
                fields[f] = plain(getattr(t, f))
    python_callable = getattr(t, "python_callable", None) or (
        t.partial_kwargs.get("python_callable") if mapped else None
    )
    out = {
        "id": t.task_id,
        "operator": names[0],
        "mro": mro,
        "upstream": sorted(t.upstream_task_ids),
        "trigger_rule": str(getattr(t, "trigger_rule", "all_success")).split(".")[-1].lower(),
        "retries": getattr(t, "retries", 0) if not mapped else t.partial_kwargs.get("retries", 0),
        "retry_delay": plain(getattr(t, "retry_delay", None) if not mapped else t.partial_kwargs.get("retry_delay")),
        "retry_exponential_backoff": bool(getattr(t, "retry_exponential_backoff", False)),
        "max_retry_delay": plain(getattr(t, "max_retry_delay", None)),
        "execution_timeout": plain(getattr(t, "execution_timeout", None)),
        "priority_weight": getattr(t, "priority_weight", 1) if not mapped else t.partial_kwargs.get("priority_weight", 1),
        "group": t.task_group.group_id if getattr(t, "task_group", None) is not None and t.task_group.group_id else None,
        "fields": fields,
        "callable": callable_ref(python_callable),
        "poke_interval": plain(getattr(t, "poke_interval", None)) if not mapped else None,
        "timeout": plain(getattr(t, "timeout", None)) if not mapped and "BaseSensorOperator" in mro else None,
        "mapped": None,
    }
    if mapped:
        expand = getattr(t.expand_input, "value", {})
        out["mapped"] = {k: plain(v) for k, v in dict(expand).items()} if isinstance(expand, dict) else {"repr": repr(expand)[:200]}
    return out


def main(folder, out):
    bag = DagBag(dag_folder=folder)
    dags = []
    for dag_id, dag in sorted(bag.dags.items()):
        dags.append({
            "id": dag_id,
            "file": dag.fileloc,
            "description": dag.description,
            "tags": sorted(dag.tags or []),
            "schedule": schedule(dag),
            "start_date": plain(dag.start_date),
            "catchup": bool(dag.catchup),
            "max_active_runs": dag.max_active_runs,
            "params": {k: plain(v) for k, v in (dag.params or {}).items()},
            "tasks": [task(t) for t in dag.tasks],
        })
    errors = [{"file": f, "error": str(e).strip().splitlines()[-1] if str(e).strip() else ""} for f, e in sorted(bag.import_errors.items())]
    # Airflow logs to stdout: the answer goes to its own file.
    with open(out, "w") as f:
        json.dump({"dags": dags, "import_errors": errors}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
