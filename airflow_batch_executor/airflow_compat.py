"""Where Airflow (and the libraries under it) behave differently from what an executor would expect.

Each workaround lives here, says which versions it is for and why, and can be deleted in one place
once the versions that need it are no longer supported.
"""

from __future__ import annotations

import gc
import sys
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
    """
    base_url = conf.get("api", "base_url", fallback="/") or "/"
    if base_url.startswith("/"):
        base_url = f"http://localhost:8080{base_url}"
    default = f"{base_url.rstrip('/')}/execution/"
    return conf.get("core", "execution_api_server_url", fallback=default) or default


def scheduler_is_exiting() -> bool:
    """True inside ``end()`` when the scheduler is being stopped rather than finishing its work.

    Airflow 3.3's scheduler never calls ``executor.terminate()``: it turns SIGTERM and SIGINT into
    ``SystemExit`` and calls ``end()`` while that exception (or the error that stopped its loop)
    unwinds.
    """
    return sys.exc_info()[1] is not None


def freeze_startup_heap() -> None:
    """Exclude everything allocated before the executor started from Python's full collections.

    A scheduler process holds millions of long-lived objects (Airflow, providers, DAG models).
    Every full garbage collection scans them all, about 0.2 s each, and thousands of queued
    workloads trigger such collections again and again; one landing in a heartbeat stalls the
    scheduler. Freezing the start-up heap (as Airflow's DAG processor manager does) leaves the
    collections only the objects created since.
    """
    gc.freeze()


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


def with_fresh_token(workload: Any, generator: Any) -> Any:
    """A copy of the workload with a newly signed token, for the same task instance or callback."""
    subject = workload.ti.id if hasattr(workload, "ti") else workload.callback.id
    return workload.model_copy(update={"token": type(workload).generate_token(str(subject), generator)})
