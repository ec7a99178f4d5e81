"""Run a Setlist DAG from Apache Airflow (2.x and 3.x) and wait for it without holding
a worker slot.

* ``SetlistRunOperator`` triggers a run through Setlist's REST API
  (``POST /api/v1/dags/{dag_id}/runs``) with a conf that carries the Airflow run's
  logical date and params, writes the Setlist run's page into the task log, then
  defers to ``SetlistRunTrigger``, which polls ``GET /api/v1/runs/{id}`` from the
  triggerer's event loop. The task fails when the Setlist run fails, naming the
  Setlist tasks that failed.
* ``SetlistRunSensor`` waits for a run id in ``reschedule`` mode, for deployments
  without a triggerer (``SetlistRunOperator(wait_for_completion=False)`` then the
  sensor).

Host and token come from an Airflow Connection (``setlist_default`` unless told
otherwise): host, port, schema (``http`` or ``https``; ``http`` when empty) and the
Setlist API token as the password. A host that starts with ``http://`` or
``https://`` is taken as the whole base URL, path included.

This file must be importable by every Airflow component, the triggerer included:
put it in ``$AIRFLOW_HOME/plugins`` (on ``sys.path`` in Airflow 2 and 3), not in the
DAGs folder, which Airflow 3's triggerer does not import from. It needs nothing but
Airflow and the standard library.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from typing import Any

# Airflow 3 moved the authoring API to airflow.sdk; Airflow 2 has it in the core.
try:
    from airflow.sdk import BaseOperator
except ImportError:  # Airflow 2
    from airflow.models.baseoperator import BaseOperator
try:
    from airflow.sdk import BaseSensorOperator
except ImportError:  # Airflow 2
    from airflow.sensors.base import BaseSensorOperator
try:
    from airflow.sdk import BaseHook
except ImportError:  # Airflow 2, 3.0
    from airflow.hooks.base import BaseHook
try:
    from airflow.sdk.exceptions import AirflowException
except ImportError:  # Airflow 2
    from airflow.exceptions import AirflowException
from airflow.triggers.base import BaseTrigger, TriggerEvent

FINISHED = ("success", "failed")
# The task states that make a Setlist run fail (upstream_failed names the casualties).
FAILED_TASK_STATES = ("failed", "upstream_failed")


class SetlistApiError(Exception):
    """Setlist answered with an error (its JSON error's code and message), or not at all."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code

    @property
    def transient(self) -> bool:
        """Worth trying again: no answer, a 5xx, or too many requests."""
        return self.status is None or self.status >= 500 or self.status == 429


class SetlistClient:
    """Setlist's REST API over the standard library (so the triggerer needs nothing more)."""

    def __init__(self, base_url: str, token: str | None, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.token = token or None
        self.timeout = timeout

    @classmethod
    def from_connection(cls, conn: Any) -> SetlistClient:
        return cls(base_url_of(conn), conn.password)

    def run_url(self, run_id: int) -> str:
        """The run's page in Setlist's web UI."""
        return f"{self.base_url}/runs/{int(run_id)}"

    def trigger(self, dag_id: str, conf: dict) -> int:
        """Triggers a manual run of ``dag_id`` with ``conf``; returns the run's id."""
        path = f"/api/v1/dags/{urllib.parse.quote(dag_id, safe='')}/runs"
        body = self._call("POST", path, {"conf": conf})
        return int(body["run_id"])

    def run(self, run_id: int) -> dict:
        """The run with its state and its task instances."""
        return self._call("GET", f"/api/v1/runs/{int(run_id)}")

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body, default=str).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            try:
                answer = json.loads(text)
                code, message = answer.get("code"), answer.get("message", text)
            except ValueError:
                code, message = None, text
            raise SetlistApiError(
                f"{method} {path} answered {e.code}: {message}", status=e.code, code=code
            ) from None
        except (urllib.error.URLError, OSError) as e:
            raise SetlistApiError(f"{method} {self.base_url}{path} failed: {e}") from None


def base_url_of(conn: Any) -> str:
    """Setlist's base URL from a Connection: schema://host:port, or a host that is a URL."""
    host = (conn.host or "").strip()
    if not host:
        raise AirflowException(
            f"Connection {conn.conn_id!r} has no host: set it to Setlist's web server, "
            "e.g. host 127.0.0.1, port 8080, schema http"
        )
    if host.startswith(("http://", "https://")):
        url = host.rstrip("/")
        if conn.port and urllib.parse.urlsplit(url).port is None:
            parts = urllib.parse.urlsplit(url)
            url = urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.netloc}:{conn.port}"))
        return url
    scheme = (conn.schema or "http").strip().lower()
    if scheme not in ("http", "https"):
        raise AirflowException(
            f"Connection {conn.conn_id!r} has schema {conn.schema!r}: use http or https"
        )
    return f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")


def failed_tasks(run: dict) -> list[str]:
    """The Setlist tasks of a run that failed, as `task (state)`."""
    return [
        f"{t['task_id']} ({t['state']})"
        for t in run.get("tasks", [])
        if t.get("state") in FAILED_TASK_STATES
    ]


def task_states(run: dict) -> str:
    return ", ".join(f"{t['task_id']}={t['state']}" for t in run.get("tasks", [])) or "no tasks"


def outcome(dag_id: str, run_id: int, run: dict, url: str) -> dict:
    """What the operator returns (its XCom), or raises, for a finished run."""
    if run.get("state") == "success":
        return {"dag_id": dag_id, "run_id": run_id, "state": "success", "url": url}
    raise AirflowException(
        f"Setlist run {run_id} of {dag_id} {run.get('state')}: failed tasks: "
        f"{', '.join(failed_tasks(run)) or 'none named'}; see {url}"
    )


class SetlistHook(BaseHook):
    """A Setlist REST API client from an Airflow Connection."""

    conn_name_attr = "setlist_conn_id"
    default_conn_name = "setlist_default"
    conn_type = "http"
    hook_name = "Setlist"

    def __init__(self, setlist_conn_id: str = default_conn_name, **kwargs: Any):
        super().__init__(**kwargs)
        self.setlist_conn_id = setlist_conn_id

    def get_conn(self) -> SetlistClient:
        return SetlistClient.from_connection(self.get_connection(self.setlist_conn_id))


def airflow_conf(context: dict) -> dict:
    """The Airflow side of the conf Setlist receives: where the request comes from, the
    run's logical date (its run_after when it has none, as manual runs in Airflow 3) and
    its params."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    logical_date = context.get("logical_date") or getattr(dag_run, "run_after", None)
    params = context.get("params") or {}
    return {
        "dag_id": getattr(ti, "dag_id", None),
        "run_id": getattr(ti, "run_id", None) or getattr(dag_run, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
        "try_number": getattr(ti, "try_number", None),
        "logical_date": logical_date.isoformat() if logical_date is not None else None,
        "params": json.loads(json.dumps(dict(params), default=str)),
    }


class SetlistRunTrigger(BaseTrigger):
    """Polls a Setlist run from the triggerer's event loop until it finishes.

    Fires one event: ``{"status": "success" | "failed", "run": {...}}`` when the run ends,
    or ``{"status": "error", "message": ...}`` when Setlist refuses to answer (a 4xx);
    each also has the ``run_id`` and its page's ``url``, so ``execute_complete`` needs
    nothing else (``airflow dags test`` drops the operator's own ``next_kwargs``).
    No answer and 5xx answers are logged and polled again; the operator's ``timeout``
    bounds the wait.
    """

    def __init__(self, run_id: int, setlist_conn_id: str, poll_interval: float = 10.0, url: str = ""):
        super().__init__()
        self.run_id = int(run_id)
        self.setlist_conn_id = setlist_conn_id
        self.poll_interval = float(poll_interval)
        self.url = url

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "run_id": self.run_id,
                "setlist_conn_id": self.setlist_conn_id,
                "poll_interval": self.poll_interval,
                "url": self.url,
            },
        )

    async def _connection(self) -> Any:
        aget = getattr(BaseHook, "aget_connection", None)
        if aget is not None:  # Airflow 3: the sync lookup is not allowed in the event loop
            return await aget(self.setlist_conn_id)
        return await asyncio.to_thread(BaseHook.get_connection, self.setlist_conn_id)

    async def run(self):
        client = SetlistClient.from_connection(await self._connection())
        about = {"run_id": self.run_id, "url": self.url or client.run_url(self.run_id)}
        seen = None
        while True:
            # Look only after a first interval: the operator looked right before it
            # deferred, and a trigger that fires within seconds of the deferral races
            # the executor's stale report of the deferred try, which makes Airflow
            # 3.3's scheduler fail the resumed task (apache/airflow#71580, #72716).
            await asyncio.sleep(self.poll_interval)
            try:
                run = await asyncio.to_thread(client.run, self.run_id)
            except SetlistApiError as e:
                if not e.transient:
                    yield TriggerEvent({**about, "status": "error", "message": str(e)})
                    return
                self.log.warning("Setlist did not answer, polling again: %s", e)
            else:
                progress = (run.get("state"), task_states(run))
                if progress != seen:
                    self.log.info("Setlist run %s is %s: %s", self.run_id, *progress)
                    seen = progress
                if run.get("state") in FINISHED:
                    yield TriggerEvent({**about, "status": run["state"], "run": run})
                    return


class SetlistRunOperator(BaseOperator):
    """Triggers a run of a Setlist DAG and waits until it ends, deferred.

    :param setlist_dag_id: the Setlist DAG to run (templated).
    :param conf: the run's conf, a dict or a JSON object as text (templated, so
        ``"{{ params.conf | tojson }}"`` works). The key ``airflow`` is added unless
        given: this Airflow run's dag_id, run_id, task_id, try_number, logical_date and
        params.
    :param setlist_conn_id: the Connection with Setlist's host and API token.
    :param wait_for_completion: False returns right after the trigger; the run id is
        the XCom ``run_id`` for ``SetlistRunSensor``.
    :param poll_interval: seconds between two looks at the run; keep it at 10 or more
        on Airflow 3.3 (a trigger that fires within seconds of the deferral can be
        failed by the scheduler, see docs/airflow.md).
    :param timeout: how long to wait for the run (a timedelta or seconds); None waits
        as long as it takes.
    :param deferrable: False polls inside the worker (holding its slot) for
        deployments without a triggerer; prefer ``SetlistRunSensor`` in reschedule mode.
    """

    template_fields = ("setlist_dag_id", "conf")
    ui_color = "#e8f1ff"

    def __init__(
        self,
        *,
        setlist_dag_id: str,
        conf: dict | str | None = None,
        setlist_conn_id: str = SetlistHook.default_conn_name,
        wait_for_completion: bool = True,
        poll_interval: float = 10.0,
        timeout: timedelta | float | None = None,
        deferrable: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.setlist_dag_id = setlist_dag_id
        self.conf = conf
        self.setlist_conn_id = setlist_conn_id
        self.wait_for_completion = wait_for_completion
        self.poll_interval = poll_interval
        self.timeout = timeout if timeout is None or isinstance(timeout, timedelta) else timedelta(seconds=timeout)
        self.deferrable = deferrable

    def _conf(self, context: dict) -> dict:
        conf = self.conf
        if isinstance(conf, str):
            try:
                conf = json.loads(conf) if conf.strip() else {}
            except ValueError as e:
                raise AirflowException(f"conf is not JSON: {e}: {conf!r}") from None
        if conf is None:
            conf = {}
        if not isinstance(conf, dict):
            raise AirflowException(f"conf must be a JSON object, not {type(conf).__name__}")
        conf = dict(conf)
        conf.setdefault("airflow", airflow_conf(context))
        return conf

    def execute(self, context: Any) -> Any:
        client = SetlistHook(self.setlist_conn_id).get_conn()
        run_id = client.trigger(self.setlist_dag_id, self._conf(context))
        url = client.run_url(run_id)
        self.log.info("Triggered Setlist run %s of %s: %s", run_id, self.setlist_dag_id, url)
        context["ti"].xcom_push(key="run_id", value=run_id)
        context["ti"].xcom_push(key="run_url", value=url)
        if not self.wait_for_completion:
            return {"dag_id": self.setlist_dag_id, "run_id": run_id, "state": "queued", "url": url}
        run = self._look(client, run_id, url) or {}
        if run.get("state") in FINISHED:  # no need to wait, deferred or not
            return outcome(self.setlist_dag_id, run_id, run, url)
        if self.deferrable:
            self.defer(
                trigger=SetlistRunTrigger(run_id, self.setlist_conn_id, self.poll_interval, url),
                method_name="execute_complete",
                timeout=self.timeout,
            )
        deadline = None if self.timeout is None else time.monotonic() + self.timeout.total_seconds()
        while run.get("state") not in FINISHED:
            if deadline is not None and time.monotonic() > deadline:
                raise AirflowException(f"Setlist run {run_id} did not finish within {self.timeout}; see {url}")
            time.sleep(self.poll_interval)
            run = self._look(client, run_id, url) or run
        return outcome(self.setlist_dag_id, run_id, run, url)

    def _look(self, client: SetlistClient, run_id: int, url: str) -> dict | None:
        """The run, or None when Setlist did not answer or answered a 5xx (logged, and
        looked at again later, as the trigger and the sensor do); a 4xx fails the task."""
        try:
            return client.run(run_id)
        except SetlistApiError as e:
            if not e.transient:
                raise AirflowException(f"Cannot follow Setlist run {run_id}: {e}; see {url}") from None
            self.log.warning("Setlist did not answer, looking again later: %s", e)
            return None

    def execute_complete(self, context: Any, event: dict, **_: Any) -> Any:
        run_id, url = event["run_id"], event["url"]
        if event.get("status") == "error":
            raise AirflowException(f"Cannot follow Setlist run {run_id}: {event.get('message')}; see {url}")
        run = event.get("run") or {}
        self.log.info("Setlist run %s ended %s: %s (%s)", run_id, run.get("state"), task_states(run), url)
        return outcome(self.setlist_dag_id, run_id, run, url)


class SetlistRunSensor(BaseSensorOperator):
    """Waits for a Setlist run to end; fails when it fails. Reschedule mode by default,
    so it holds no worker slot between pokes even without a triggerer.

    :param run_id: the Setlist run id (templated), e.g.
        ``"{{ ti.xcom_pull(task_ids='trigger', key='run_id') }}"``.
    """

    template_fields = ("run_id",)

    def __init__(
        self,
        *,
        run_id: int | str,
        setlist_conn_id: str = SetlistHook.default_conn_name,
        mode: str = "reschedule",
        **kwargs: Any,
    ):
        super().__init__(mode=mode, **kwargs)
        self.run_id = run_id
        self.setlist_conn_id = setlist_conn_id

    def poke(self, context: Any) -> bool:
        client = SetlistHook(self.setlist_conn_id).get_conn()
        run_id = int(self.run_id)
        try:
            run = client.run(run_id)
        except SetlistApiError as e:
            if e.transient:
                self.log.warning("Setlist did not answer, poking again: %s", e)
                return False
            raise AirflowException(str(e)) from None
        url = client.run_url(run_id)
        self.log.info("Setlist run %s is %s: %s (%s)", run_id, run.get("state"), task_states(run), url)
        if run.get("state") not in FINISHED:
            return False
        outcome(run.get("dag_id", "?"), run_id, run, url)
        return True
