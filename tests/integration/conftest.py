"""Fixtures of the executor tests through the local Batch: real HTTP, real boto3, jobs running as local
processes. The helpers the tests share are in helpers.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_batch_executor.status import receiver
from airflow_batch_executor.submit import submitter
from batch_devtools.local_batch import LocalBatch
from batch_devtools.local_batch.environment import WORKLOAD_BUCKET

from .fake_task_sdk import FAKE_TASK_SDK, SITECUSTOMIZE


@pytest.fixture(scope="module")
def local_batch() -> Iterator[LocalBatch]:
    """One local Batch per test module: moto's state is process-wide, so instances never overlap.

    No warm starts: these tests' jobs are stand-ins, each test's environment runs one or a few, and a
    zygote's import of Airflow would cost more than it saves (on every version's leg).
    """
    with LocalBatch(port=0, step_delay=0.05, warm_start=False) as lb:
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
    monkeypatch.setattr(receiver, "WAIT_SECONDS", 1)
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
