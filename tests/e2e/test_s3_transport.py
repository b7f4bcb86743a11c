"""The example DAGs through a real scheduler with ``workload_transport = s3://...``: every task runs
with the real Task SDK from a workload its job fetched out of band, and no token is left anywhere an
operator with Batch (or bucket) read access could find it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from batch_devtools.devstack import DevStack
from batch_devtools.devstack.demo import DEMO_DAGS, RunResult, outcome_problems
from batch_devtools.devstack.settings import Timing
from batch_devtools.local_batch.environment import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, WORKLOAD_BUCKET

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PREFIX = "e2e-workloads"
RUN_TIMEOUT_SECONDS = 240.0
TOKEN_LIFETIME_SECONDS = 30
"""Airflow 3.3 signs workload tokens for ``[scheduler] task_queued_timeout``; short here, so a job
can be held in RUNNABLE past it. The scheduler's own check for tasks stuck in the queue is pushed
out of the test's reach, so the executor's refresh is what keeps such a task alive."""


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    settings = {
        "AIRFLOW__AWS_BATCH_EXECUTOR__WORKLOAD_TRANSPORT": f"s3://{WORKLOAD_BUCKET}/{PREFIX}",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": str(TOKEN_LIFETIME_SECONDS),
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "3600",
    }
    with DevStack(EXAMPLES, timing=Timing(extra=settings)) as running:
        yield running


def s3_client(stack: DevStack) -> Any:
    env = stack.environment
    return boto3.client(
        "s3",
        endpoint_url=env.endpoint_url,
        region_name=env.region,
        aws_access_key_id=FAKE_ACCESS_KEY,
        aws_secret_access_key=FAKE_SECRET_KEY,
    )


def test_example_dags_succeed_and_no_token_is_left_in_batch_or_s3(stack: DevStack) -> None:
    runs = {dag_id: stack.trigger(dag_id) for dag_id in DEMO_DAGS}
    results = [
        RunResult(
            dag_id,
            run_id,
            stack.wait_for_run(dag_id, run_id, RUN_TIMEOUT_SECONDS),
            stack.task_instances(dag_id, run_id),
        )
        for dag_id, run_id in runs.items()
    ]
    job_ids = [ti.external_executor_id for result in results for ti in result.task_instances]
    jobs = stack.wait_for_jobs(job_id for job_id in job_ids if job_id)
    assert outcome_problems(results, jobs) == []

    # Every job of the run, as DescribeJobs shows it, and every SubmitJob request: no token.
    requests = stack.submitted_requests()
    assert len(requests) == len(jobs) + 1, "one job per task try (retry_once.flaky has two)"
    every_job = stack.describe_jobs(request_job_ids(stack, requests))
    assert len(every_job) == len(requests)
    for record in every_job.values():
        command = record["container"]["command"]
        assert command[:3] == ["python", "-m", "airflow_batch_executor.worker"]
        assert command[3].startswith(f"s3://{WORKLOAD_BUCKET}/{PREFIX}/{record['jobName']}.")
    dumped = json.dumps([requests, list(every_job.values())], default=str)
    assert "eyJ" not in dumped and '"token"' not in dumped

    # The jobs consumed their objects; whatever the executor still had to remove is gone shortly.
    s3 = s3_client(stack)
    deadline = time.monotonic() + 15
    while (left := s3.list_objects_v2(Bucket=WORKLOAD_BUCKET, Prefix=f"{PREFIX}/").get("Contents")) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.5)
    for item in left or []:
        body = s3.get_object(Bucket=WORKLOAD_BUCKET, Key=item["Key"])["Body"].read()
        assert b"eyJ" not in body and b'"token"' not in body, item["Key"]
    assert not left


def test_a_task_held_in_runnable_past_its_token_lifetime_still_succeeds(stack: DevStack) -> None:
    stack.batch.add_fault("stuck_in_runnable", pattern="per_task_resources-*", count=1)
    run_id = stack.trigger("per_task_resources")
    deadline = time.monotonic() + 60
    while not (held := [job for job in stack.batch.jobs() if is_waiting(job, "per_task_resources-")]):
        assert time.monotonic() < deadline, "the task's job was never submitted"
        time.sleep(0.5)
    [job] = held
    time.sleep(TOKEN_LIFETIME_SECONDS * 1.5)  # the token it was submitted with has expired
    assert stack.describe_jobs([job["jobId"]])[job["jobId"]]["status"] == "RUNNABLE"
    assert stack.batch.release_stuck_jobs() == [job["jobId"]]

    assert stack.wait_for_run("per_task_resources", run_id, RUN_TIMEOUT_SECONDS) == "success"
    [ti] = stack.task_instances("per_task_resources", run_id)
    assert (ti.state, ti.try_number, ti.external_executor_id) == ("success", 1, job["jobId"])
    log = stack.component_log("scheduler-1")
    assert "Rewrote the workload object" in log and job["jobName"] in log


def is_waiting(job: dict[str, Any], name_prefix: str) -> bool:
    return job["jobName"].startswith(name_prefix) and job["status"] not in ("SUCCEEDED", "FAILED")


def request_job_ids(stack: DevStack, requests: list[dict[str, Any]]) -> list[str]:
    client = stack.batch_client()
    ids = []
    for request in requests:
        listed = client.list_jobs(
            jobQueue=request["jobQueue"], filters=[{"name": "JOB_NAME", "values": [request["jobName"]]}]
        )["jobSummaryList"]
        ids += [job["jobId"] for job in listed if job["jobName"] == request["jobName"]]
    return ids
