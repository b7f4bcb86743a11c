"""Inline mode: the executor's workload commands run inside the job's thread, not as processes.

A fault soak drives thousands of jobs on two cores, where a Python process per job (the real
Task SDK) does not fit. What the soak must see is whether a workload was fetched and run, and how
often, so an inline job does the part that decides that for real and records the rest:

* ``python -m airflow_batch_executor.in_job.bootstrap s3://bucket/key`` (the S3 bootstrap): the REAL
  bootstrap's :func:`~airflow_batch_executor.in_job.bootstrap.fetch` reads and deletes the object through this
  server (so S3 faults and the history apply), recorded as ``fetch``; a :class:`FetchError` ends the
  container with its exit code, as the bootstrap would. A fetched workload is recorded as
  ``workload_run`` and "runs" for ``inline_run_seconds``.
* ``python -m airflow.sdk.execution_time.execute_workload --json-string <json>`` (command mode; also
  ``airflow_batch_executor.in_job.callback_runner``): recorded as ``workload_run`` from the JSON, no fetch.

Any other command is not a workload the executor sends, and runs as a process as in process mode.
Nothing here logs a workload's token; the history keeps it for the soak's checks.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_batch_executor.job_contract import BOOTSTRAP_MODULE, CALLBACK_RUNNER_MODULE, TASK_SDK_MODULE
from batch_devtools.local_batch.runner import PYTHON_NAMES

if TYPE_CHECKING:
    from batch_devtools.local_batch.logsink import CloudWatchLogSink
    from batch_devtools.local_batch.runtime import Runtime

logger = logging.getLogger(__name__)

WORKLOAD_MODULES = frozenset({TASK_SDK_MODULE, CALLBACK_RUNNER_MODULE})
UNREADABLE_WORKLOAD_EXIT = 1
"""What the Task SDK exits with on a workload it cannot parse."""
STOPPED_BEFORE_THE_TASK_EXIT = 128 + 15
"""A job terminated before its task started: on AWS the container gets SIGTERM, and the bootstrap
(whose fetch it interrupts, or which checks for it before starting the Task SDK) exits with 128 + 15
without running the task."""
TI_FIELDS = ("dag_id", "task_id", "run_id", "map_index", "try_number")


@dataclass(frozen=True)
class InlineWorkload:
    """What an inline job runs: an S3 object to fetch (``uri``) or a workload JSON from the command."""

    uri: str | None = None
    json_text: str | None = None


def inline_workload(command: list[str]) -> InlineWorkload | None:
    """The workload an executor's command hands its job; None for any other command."""
    if len(command) < 3 or command[0] not in PYTHON_NAMES or command[1] != "-m":
        return None
    if command[2] == BOOTSTRAP_MODULE and len(command) == 4:
        return InlineWorkload(uri=command[3])
    if command[2] in WORKLOAD_MODULES and len(command) == 5 and command[3] == "--json-string":
        return InlineWorkload(json_text=command[4])
    return None


def workload_fields(text: str | bytes) -> dict[str, Any] | None:
    """The identity and token of a workload (None when it is not a JSON object): ``type``, the
    ``ti`` fields (with ``ti_id``), ``callback_id`` or ``connection_test_id``, and ``token``."""
    try:
        workload = json.loads(text)
    except ValueError:
        return None
    if not isinstance(workload, dict):
        return None
    fields: dict[str, Any] = {"type": workload.get("type")}
    ti = workload.get("ti")
    if isinstance(ti, dict):
        fields.update({name: ti.get(name) for name in TI_FIELDS}, ti_id=ti.get("id"))
    callback = workload.get("callback")
    if isinstance(callback, dict):
        fields["callback_id"] = callback.get("id")
    if "connection_test_id" in workload:
        fields["connection_test_id"] = workload.get("connection_test_id")
    token = workload.get("token")
    fields["token"] = token if isinstance(token, str) else None
    return fields


def run_inline(
    runtime: Runtime,
    job_id: str,
    attempt: int,
    workload: InlineWorkload,
    sink: CloudWatchLogSink,
    stopped: Callable[[], bool] = lambda: False,
    array_index: int | None = None,
) -> int:
    """Fetch (S3 bootstrap) and record the workload; the exit code its container would end with.

    ``stopped`` tells whether the job was terminated meanwhile: the task then never starts.
    ``array_index`` is an array child's ``AWS_BATCH_JOB_ARRAY_INDEX``: an inline run has no environment,
    so the index comes as an argument and is recorded (``arrayIndex``) in its ``fetch`` and
    ``workload_run`` entries, telling which child ran what.
    """
    history = runtime.history
    child = {} if array_index is None else {"arrayIndex": array_index}
    if stopped():
        sink("terminated before the task started")
        return STOPPED_BEFORE_THE_TASK_EXIT
    text: str | bytes | None = workload.json_text
    if workload.uri is not None:
        from airflow_batch_executor.in_job.bootstrap import FetchError, fetch

        sink(f"inline run of {workload.uri}")
        try:
            text = fetch(workload.uri, client=runtime.s3)
        except FetchError as err:
            history.record(
                "fetch", jobId=job_id, attempt=attempt, uri=workload.uri, outcome=err.exit_code, **child
            )
            sink(str(err))
            return err.exit_code
        history.record("fetch", jobId=job_id, attempt=attempt, uri=workload.uri, outcome="ok", **child)
        if stopped():
            sink("terminated before the task started")
            return STOPPED_BEFORE_THE_TASK_EXIT
    fields = workload_fields(text or "")
    if fields is None:
        sink("inline run: the workload is not a JSON object; the Task SDK would refuse it")
        return UNREADABLE_WORKLOAD_EXIT
    if workload.uri is None:
        sink(f"inline run of {_describe(fields)}")
    history.record("workload_run", jobId=job_id, attempt=attempt, uri=workload.uri, **fields, **child)
    return 0


def _describe(fields: dict[str, Any]) -> str:
    """A log line naming the workload, never its token."""
    if "dag_id" in fields:
        return (
            f"{fields['type']} {fields['dag_id']}.{fields['task_id']} run {fields['run_id']} "
            f"map_index {fields['map_index']} try {fields['try_number']}"
        )
    identity = fields.get("callback_id") or fields.get("connection_test_id")
    return f"{fields['type']} {identity}"


class InlineContainer:
    """The "container" of an inline job: it exits with ``exit_code`` once ``seconds`` have passed.

    It has the shape of :class:`~batch_devtools.local_batch.runner.ProcessRunner` that the job's
    supervision loop needs (poll, stop, kill), so terminate, timeouts and host faults treat both alike.
    """

    pid = None

    def __init__(self) -> None:
        self._exit_code: int | None = None
        self._ends_at: float | None = None

    def begin(self, exit_code: int, seconds: float) -> None:
        self._exit_code = exit_code
        self._ends_at = time.monotonic() + max(seconds, 0.0)

    def poll(self) -> int | None:
        if self._ends_at is None or time.monotonic() < self._ends_at:
            return None
        return self._exit_code

    def finish(self) -> int:
        return self._exit_code if self._exit_code is not None else 0

    def stop(self, grace_seconds: float) -> int:
        """Stopped before it ended: it dies of SIGTERM, as a container that heeds it (128 + 15)."""
        return 143

    def kill(self) -> int:
        return 137
