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


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    transport = {"AIRFLOW__AWS_BATCH_EXECUTOR__WORKLOAD_TRANSPORT": f"s3://{WORKLOAD_BUCKET}/{PREFIX}"}
    with DevStack(EXAMPLES, timing=Timing(extra=transport)) as running:
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


def request_job_ids(stack: DevStack, requests: list[dict[str, Any]]) -> list[str]:
    client = stack.batch_client()
    ids = []
    for request in requests:
        listed = client.list_jobs(
            jobQueue=request["jobQueue"], filters=[{"name": "JOB_NAME", "values": [request["jobName"]]}]
        )["jobSummaryList"]
        ids += [job["jobId"] for job in listed if job["jobName"] == request["jobName"]]
    return ids
