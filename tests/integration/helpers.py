"""Helpers shared by the integration tests: workloads as the scheduler hands them over, a heartbeat
loop that records what the scheduler hears, waiting on the local Batch, and a metrics recorder.

Test modules import their shared helpers from here, never from one another or from conftest.py
(which holds the fixtures).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_batch_executor.airflow_side import compat
from batch_devtools.local_batch.environment import WORKLOAD_BUCKET
from batch_devtools.local_batch.logsink import read_stream

BUCKET = WORKLOAD_BUCKET
"""The local Batch's workload bucket."""
MINTS = compat.token_generator(SimpleNamespace(jwt_generator=object())) is not None
"""Whether this Airflow lets an executor sign workload tokens."""


def configure_team(
    monkeypatch: pytest.MonkeyPatch, team: str, source: dict[str, str], **options: str
) -> None:
    """Give ``team``'s executor its own ``[aws_batch_executor]`` options (Airflow's team variables):
    every executor option of ``source`` (environment variables), then ``options``."""
    prefix = "AIRFLOW__AWS_BATCH_EXECUTOR__"
    values = {name[len(prefix) :].lower(): value for name, value in source.items() if name.startswith(prefix)}
    for option, value in {**values, **options}.items():
        monkeypatch.setenv(f"AIRFLOW__{team.upper()}___AWS_BATCH_EXECUTOR__{option.upper()}", value)


def python_command(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def workload(
    task_id: str = "task",
    *,
    dag_id: str = "dag",
    run_id: str = "run-1",
    try_number: int = 1,
    map_index: int = -1,
    queue: str = "default",
    executor_config: Any = None,
    priority_weight: int = 1,
):
    """An ExecuteTask workload with the fields the scheduler fills in."""
    from airflow.executors.workloads import BundleInfo, ExecuteTask, TaskInstance

    ti = TaskInstance(
        id=uuid.uuid4(),
        task_id=task_id,
        dag_id=dag_id,
        run_id=run_id,
        try_number=try_number,
        map_index=map_index,
        dag_version_id=uuid.uuid4(),
        queue=queue,
        pool_slots=1,
        priority_weight=priority_weight,
        executor_config=executor_config,
    )
    return ExecuteTask(
        ti=ti,
        dag_rel_path="dags/example.py",
        bundle_info=BundleInfo(name="dags-folder"),
        log_path=f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt={try_number}.log",
        token="workload-token",
    )


def short_lived_tokens(monkeypatch: pytest.MonkeyPatch, lifetime: int) -> None:
    """Workload tokens signed by executors made from now on live ``lifetime`` seconds: Airflow 3.3 (and
    3.2.2) signs them for ``task_queued_timeout``, 3.2.0 for the lifetime of execution tokens."""
    monkeypatch.setenv("AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT", str(lifetime))
    monkeypatch.setenv("AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME", str(lifetime))


def pump(executor, until: Callable[[list], bool], timeout: float = 120.0) -> list[tuple[Any, str, Any]]:
    """Heartbeat like the scheduler does, recording (key, state, info) events until ``until(events)``.

    It returns as soon as the condition holds; the generous default is for a loaded CI machine, where
    S3-mode jobs (a bootstrap and a Task SDK process each) take tens of seconds to start in parallel.
    """
    events: list[tuple[Any, str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executor.heartbeat()
        events += [(key, str(state), info) for key, (state, info) in executor.get_event_buffer().items()]
        if until(events):
            return events
        time.sleep(0.05)
    raise AssertionError(f"condition not reached in {timeout}s; events so far: {events}")


def final_states(events: list[tuple[Any, str, Any]]) -> dict[Any, str]:
    """The last state reported per key, ignoring the running events."""
    return {key: state for key, state, _ in events if state != "running"}


def finished(*keys: Any) -> Callable[[list], bool]:
    return lambda events: set(keys) <= set(final_states(events))


def queue(executor, *workloads_) -> None:
    for item in workloads_:
        executor.queue_workload(item, session=None)


def reported(events: list[tuple[Any, str, Any]], key: Any) -> list[tuple[str, Any]]:
    """What the scheduler heard of ``key``, in order, as (state, info).

    A running event is sent at submission and again, with the same job id, once the container started
    (in case the scheduler dropped the first); the two may also land in one heartbeat, where the buffer
    keeps one. So a repeat counts once here, and a test of the order does not depend on timing.
    """
    heard: list[tuple[str, Any]] = []
    for event_key, state, info in events:
        if event_key == key and (not heard or heard[-1] != (state, info) or state != "running"):
            heard.append((state, info))
    return heard


def states_of(events: list[tuple[Any, str, Any]], key: Any) -> list[str]:
    """The states ``reported`` for ``key``."""
    return [state for state, _ in reported(events, key)]


def executor_job_id(events) -> str:
    """The job id the first running event told the scheduler."""
    return next(info for _, state, info in events if state == "running")


def ti_for(item, external_executor_id=None):
    """The task instance of a workload as ``try_adopt_task_instances`` and ``revoke_task`` get it."""
    ti = item.ti
    return SimpleNamespace(
        key=ti.key,
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        run_id=ti.run_id,
        map_index=ti.map_index,
        try_number=ti.try_number,
        queue=ti.queue,
        executor_config=ti.executor_config,
        external_executor_id=external_executor_id,
    )


def describe(batch_env, job_id: str) -> dict:
    """The DescribeJobs record of one job of the local Batch."""
    return batch_env.client("batch").describe_jobs(jobs=[job_id])["jobs"][0]


def wait_until(condition, timeout: float = 30.0) -> None:
    """Wait for ``condition()``; it returns at once when it holds, the timeout only bounds a failure."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.1)


def status_messages(monkeypatch: pytest.MonkeyPatch, executor) -> dict[tuple[str, str], set[str]]:
    """The status-queue messages the executor's receiver took in: SQS message ids per (job id, status).

    A message shows up here only once it waits for the next heartbeat, so a heartbeat after it is seen
    hands it to the executor. Counted by message id, a copy received more than once (left on the queue,
    or taken by a stopping executor's last long poll and handed out again) counts once.
    """
    receiver = executor.jobs._receiver
    seen: dict[tuple[str, str], set[str]] = {}
    keep = receiver._keep

    def keeping(messages: list[dict[str, Any]]) -> None:
        keep(messages)
        for message in messages:
            try:
                detail = json.loads(message["Body"])["detail"]
                seen.setdefault((detail["jobId"], detail["status"]), set()).add(message["MessageId"])
            except (KeyError, TypeError, ValueError):
                continue  # not a state-change event: the receiver has dealt with it

    monkeypatch.setattr(receiver, "_keep", keeping)
    return seen


class Recorder:
    """Airflow's ``Stats``, recording each call as (kind, name, value)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, object]] = []

    def incr(self, name, count=1, rate=None, *, tags=None):
        self.calls.append(("incr", name, count))

    def timing(self, name, value, *, tags=None):
        self.calls.append(("timing", name, value))

    def gauge(self, name, value, rate=None, delta=None, *, tags=None):
        self.calls.append(("gauge", name, value))

    def names(self) -> set[str]:
        return {name for _, name, _ in self.calls}


def whole_log(batch_env, job_id: str) -> list[str]:
    """Every line of the job's CloudWatch Logs stream, oldest first (complete once the job ended)."""
    record = batch_env.client("batch").describe_jobs(jobs=[job_id])["jobs"][0]
    assert record["status"] in ("SUCCEEDED", "FAILED"), record["status"]
    return read_stream(batch_env.client("logs"), batch_env.log_group, record["container"]["logStreamName"])
