"""Executor tests through the local Batch: real HTTP, real boto3, jobs running as local processes."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_batch_executor import status_events, submitter
from batch_devtools.local_batch import LocalBatch
from batch_devtools.local_batch.environment import WORKLOAD_BUCKET

from .fake_task_sdk import FAKE_TASK_SDK, SITECUSTOMIZE


@pytest.fixture(scope="module")
def local_batch() -> Iterator[LocalBatch]:
    """One local Batch per test module: moto's state is process-wide, so instances never overlap."""
    with LocalBatch(port=0, step_delay=0.05) as lb:
        yield lb


@pytest.fixture
def batch_env(local_batch: LocalBatch, monkeypatch: pytest.MonkeyPatch) -> LocalBatch:
    """Point the executor (through the amazon provider's connection machinery) at the local Batch."""
    for name, value in local_batch.settings_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps(
            {
                "conn_type": "aws",
                "extra": {"region_name": local_batch.region, "endpoint_url": local_batch.endpoint_url},
            }
        ),
    )
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__STATUS_POLL_INTERVAL", "0.1")
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "http://127.0.0.1:9/execution/")
    monkeypatch.setattr(submitter, "BACKOFF_BASE_SECONDS", 0.05)
    local_batch.faults.clear()
    local_batch.clear_submitted_requests()
    return local_batch


@pytest.fixture
def event_mode(batch_env: LocalBatch, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalBatch]:
    """Status from the local Batch's state-change events; DescribeJobs only reconciles, rarely.

    Events of earlier tests' jobs may still be on the queue: untracked, so they are dropped.
    """
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__STATUS_QUEUE_URL", batch_env.status_queue_url)
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__STATUS_RECONCILE_INTERVAL", "60")
    monkeypatch.setattr(status_events, "WAIT_SECONDS", 1)
    batch_env.settings.publish_events = True
    yield batch_env
    batch_env.settings.publish_events = False


@pytest.fixture(params=["polling", "events"])
def status_source(request: pytest.FixtureRequest, batch_env: LocalBatch) -> str:
    """Run a test with each way the executor learns job status."""
    if request.param == "events":
        request.getfixturevalue("event_mode")
    return request.param


@pytest.fixture
def make_executor(batch_env: LocalBatch) -> Iterator[Callable[..., Any]]:
    from airflow_batch_executor import AwsBatchExecutor

    made: list[AwsBatchExecutor] = []

    def make(start: bool = True, team: str | None = None) -> AwsBatchExecutor:
        executor = AwsBatchExecutor(team_name=team)
        if start:
            executor.start()
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor._stop(terminate_jobs=False)


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


def pump(executor, until: Callable[[list], bool], timeout: float = 30.0) -> list[tuple[Any, str, Any]]:
    """Heartbeat like the scheduler does, recording (key, state, info) events until ``until(events)``."""
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


@pytest.fixture
def s3_mode(batch_env, monkeypatch, tmp_path):
    """S3 workload transport under a prefix of its own; jobs run the fake Task SDK."""
    s3 = batch_env.client("s3")
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__WORKLOAD_TRANSPORT", f"s3://{WORKLOAD_BUCKET}/{prefix}")
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (tmp_path / "fake_task_sdk.py").write_text(FAKE_TASK_SDK)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("FAKE_TASK_SDK", str(tmp_path / "fake_task_sdk.py"))

    def objects() -> list[str]:
        listed = s3.list_objects_v2(Bucket=WORKLOAD_BUCKET, Prefix=f"{prefix}/")
        return [item["Key"] for item in listed.get("Contents", [])]

    return SimpleNamespace(s3=s3, prefix=prefix, objects=objects)
