"""Where Airflow versions (and the libraries under them) differ, or differ from what an executor expects.

Each shim lives here, says which versions it is for and why, and can be deleted in one place once the
versions that need it are no longer supported. What the executor does *to* Airflow (database writes,
token signing, team lookups, the heap) is :mod:`~airflow_batch_executor.airflow_side.adapter`'s.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

from packaging.version import Version

SHARED_SECTIONS_SINCE = Version("3.2")


def accepts_shared_config_section() -> bool:
    """Airflow 3.1 refuses to start when two providers describe one config section.

    The amazon provider describes ``[aws_batch_executor]`` too, so on 3.1 the section is left to it
    (the options are read the same either way, with our defaults as fallbacks).
    """
    from airflow import __version__ as airflow_version

    return Version(Version(airflow_version).base_version) >= SHARED_SECTIONS_SINCE


def execution_api_url(conf: Any) -> str:
    """The execution API URL jobs report to, as Airflow derives it for its own workers.

    ``[core] execution_api_server_url``, else derived from ``[api] base_url``. Airflow 3.1 has no
    ``get_execution_api_server_url`` helper, so the derivation is written out here.

    A team's executor (``conf`` an ``ExecutorConf`` with a team) takes the team's own value when the
    team has one, else the deployment's: Airflow's team lookup never falls back to the global
    settings, and the ``localhost`` it would end with is never where a Batch job finds the API server.
    """
    for source in _team_then_global(conf):
        if url := source.get("core", "execution_api_server_url", fallback=None):
            return url
        if base_url := source.get("api", "base_url", fallback=None):
            return _under(base_url)
    return _under("/")


def _under(base_url: str) -> str:
    if base_url.startswith("/"):
        base_url = f"http://localhost:8080{base_url}"
    return f"{base_url.rstrip('/')}/execution/"


def _team_then_global(conf: Any) -> list[Any]:
    if getattr(conf, "team_name", None) is None:
        return [conf]
    from airflow.configuration import conf as global_conf

    return [conf, global_conf]


def scheduler_is_exiting() -> bool:
    """True inside ``end()`` when the scheduler is being stopped rather than finishing its work.

    Airflow 3.3's scheduler never calls ``executor.terminate()``: it turns SIGTERM and SIGINT into
    ``SystemExit`` and calls ``end()`` while that exception (or the error that stopped its loop)
    unwinds.
    """
    return sys.exc_info()[1] is not None


class KeepsEventLogRows:
    """Keeps the executor's task event-log rows alive until the scheduler has saved them.

    The scheduler saves these rows with ``session.bulk_save_objects`` over a generator that pops
    them from ``_task_event_logs``; SQLAlchemy 2.1 (with Airflow 3.3) holds such objects only weakly,
    so a row nothing else references is collected before its INSERT and the operator never sees the
    reason. Rows are released at the next heartbeat once they have left the deque: the scheduler
    saves them between heartbeats, never during one.
    """

    _task_event_logs: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._event_rows: list[Any] = []

    def log_task_event(self, *, event: str, extra: str, ti_key: Any) -> None:
        before = len(self._task_event_logs)
        super().log_task_event(event=event, extra=extra, ti_key=ti_key)  # type: ignore[misc]
        if len(self._task_event_logs) > before:
            self._event_rows.append(self._task_event_logs[-1])

    def heartbeat(self) -> None:
        waiting = {id(row) for row in self._task_event_logs}
        self._event_rows = [row for row in self._event_rows if id(row) in waiting]
        super().heartbeat()  # type: ignore[misc]


def token_generator(executor: Any) -> Any | None:
    """The executor's JWT generator, or None where this Airflow cannot mint workload tokens.

    Airflow 3.3's workloads have ``generate_token`` (a token with ``scope: workload``, valid for
    ``[scheduler] task_queued_timeout``). Airflow 3.1's have not: the token the scheduler signed
    (valid for ``[execution_api] jwt_expiration_time``) is the only one a job can get, so it is kept.
    """
    try:
        from airflow.executors.workloads.base import BaseWorkloadSchema
    except ImportError:  # Airflow 3.1: workloads is one module, without generate_token
        return None
    if not hasattr(BaseWorkloadSchema, "generate_token"):
        return None
    return executor.jwt_generator


def parse_workload(body: bytes) -> Any:
    """A workload from its JSON (an adopted job's object, to re-sign its token; Airflow 3.2+, the
    versions that can sign tokens, have ``workloads.All``)."""
    from airflow.executors.workloads import All
    from pydantic import TypeAdapter

    return TypeAdapter(All).validate_json(body)


def supports_connection_tests() -> bool:
    """Airflow 3.3 hands connection tests (``TestConnection`` workloads) to executors that opt in."""
    from airflow.executors.base_executor import BaseExecutor

    return hasattr(BaseExecutor, "supports_connection_test")


def pending_workloads(executor: Any) -> list[dict[Any, Any]]:
    """The base executor's dicts of workloads waiting for ``_process_workloads``, by kind.

    Tasks in every Airflow 3; callbacks since 3.2; connection tests since 3.3.
    """
    names = ("queued_tasks", "queued_callbacks", "queued_connection_tests")
    return [getattr(executor, name) for name in names if hasattr(executor, name)]


def scheduler_event_key(key: Any) -> Any:
    """The key an event must carry for the scheduler to find its workload.

    Airflow 3.2 keys a callback by its id as a string and hands that string to ``session.get`` on a
    UUID column, which SQLite and MySQL reject: the scheduler crashes on the first callback event
    (its own LocalExecutor's too). The id as a ``UUID`` works on every database. Airflow 3.3's
    callback keys are ``CallbackKey`` objects, which it converts itself; task keys are never strings.
    """
    return uuid.UUID(key) if isinstance(key, str) else key


def is_connection_test(key: Any) -> bool:
    """Whether a workload key is a connection test's (Airflow 3.3)."""
    try:
        from airflow.models.connection_test import ConnectionTestKey
    except ImportError:
        return False
    return isinstance(key, ConnectionTestKey)


def teams_enabled() -> bool:
    """Multi-team mode is on, in an Airflow that has it (3.2+: teams own DAG bundles and connections)."""
    import inspect

    from airflow.configuration import conf
    from airflow.models.connection import Connection

    has_teams = "team_name" in inspect.signature(Connection.get_connection_from_secrets).parameters
    return has_teams and conf.getboolean("core", "multi_team", fallback=False)


def run_callback(workload: Any) -> tuple[bool, str | None]:
    """Run an executor callback in this process (inside its job): (succeeded, error message).

    Airflow 3.3 supervises the callback in a child process (``BaseExecutor.run_workload``, which
    sets up its bundle, logs and API access, and raises when the child fails). Airflow 3.2 has no
    ``run_workload``; its executors call ``execute_callback_workload`` in process, as done here.
    """
    from airflow.executors.base_executor import BaseExecutor

    if hasattr(BaseExecutor, "run_workload"):
        try:
            code = BaseExecutor.run_workload(workload, subprocess_logs_to_stdout=True)
        except Exception as error:  # noqa: BLE001 - 3.3 raises when the callback's process fails
            return False, str(error)
        return code == 0, None if code == 0 else f"the callback's process exited with code {code}"
    import structlog
    from airflow.executors.workloads.callback import execute_callback_workload

    _import_from_bundle(workload.bundle_info)
    return execute_callback_workload(workload.callback, structlog.get_logger("callback"))


def _import_from_bundle(bundle_info: Any) -> None:
    """Make a callback defined in the DAG bundle importable, as Airflow 3.3's callback supervisor does
    (Airflow 3.2 imports callbacks only from installed packages and the plugins folder)."""
    if bundle_info is None or not bundle_info.name:
        return
    import logging

    from airflow.dag_processing.bundles.manager import DagBundlesManager

    try:
        bundle = DagBundlesManager().get_bundle(name=bundle_info.name, version=bundle_info.version)
        bundle.initialize()
    except Exception as error:  # noqa: BLE001 - a callback from an installed package still runs
        logging.getLogger(__name__).warning("Could not set up DAG bundle %s: %s", bundle_info.name, error)
        return
    if (path := str(bundle.path)) not in sys.path:
        sys.path.append(path)
