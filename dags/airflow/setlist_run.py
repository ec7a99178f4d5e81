"""An Airflow DAG that runs a Setlist DAG and succeeds or fails with it.

Trigger it with params (UI, REST or `airflow dags trigger setlist_run -c '{...}'`):
``setlist_dag_id`` names the Setlist DAG, ``conf`` is the conf its run gets (the
``airflow`` key, with this run's logical date and params, is added). Host and token
come from the Connection ``setlist_default``. Needs setlist_airflow.py on the
triggerer's and workers' path: see docs/airflow.md in the Setlist repository.
"""

from __future__ import annotations

from datetime import datetime, timedelta

try:
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.models.param import Param

from setlist_airflow import SetlistRunOperator

with DAG(
    dag_id="setlist_run",
    description="Runs a Setlist DAG through Setlist's REST API and waits for it, deferred.",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["setlist"],
    params={
        "setlist_dag_id": Param("hello", type="string", description="The Setlist DAG to run."),
        "conf": Param({}, type="object", description="The conf of the Setlist run."),
    },
):
    SetlistRunOperator(
        task_id="run_setlist_dag",
        setlist_dag_id="{{ params.setlist_dag_id }}",
        conf="{{ params.conf | tojson }}",
        poll_interval=10,
        timeout=timedelta(hours=2),
    )
