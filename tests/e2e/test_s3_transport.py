"""The example DAGs through a real scheduler with ``workload_transport = s3://...``: every task runs
with the real Task SDK from a workload its job fetched out of band, and no token is left anywhere an
operator with Batch (or bucket) read access could find it, nor in any job's log or task log (Airflow
3.1's Task SDK prints the token when it starts; the job's bootstrap hides it)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from airflow.executors.workloads import ExecuteTask

from batch_devtools.devstack import DevStack
from batch_devtools.devstack.demo import DEMO_DAGS, RunResult, outcome_problems
from batch_devtools.devstack.settings import Timing
from batch_devtools.local_batch.environment import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, WORKLOAD_BUCKET
from batch_devtools.local_batch.logsink import read_stream

from .harness import e2e_stack, log_events

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
"""One test starts a stack, runs the example DAGs and scans everything they left: more than the
suite's 300 s per test when the machine is busy."""

PRINTS_TOKEN = ExecuteTask.model_fields["token"].repr
"""Whether this Airflow's workload model prints its token (3.1) or hides it (3.2 and later)."""

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PREFIX = "e2e-workloads"
RUN_TIMEOUT_SECONDS = 240.0
JWT_SHAPED = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
TOKEN_VALUE = re.compile(r"""\btoken["']?\s*[:=]\s*["']([^"']*)["']""")
"""A token field as a JSON log line or a repr prints it: ``"token": "..."`` or ``token='...'``."""
TASK_SDK_START = "Executing workload"


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    transport = {
        "AIRFLOW__AWS_BATCH_EXECUTOR__WORKLOAD_TRANSPORT": f"s3://{WORKLOAD_BUCKET}/{PREFIX}",
        # Airflow 3.1.2's API server signs its login tokens with ``iss: []`` when no issuer is set,
        # which PyJWT 2.10+ refuses; Airflow recommends setting one anyway.
        "AIRFLOW__API_AUTH__JWT_ISSUER": "airflow-batch-executor-e2e",
    }
    with e2e_stack(EXAMPLES, timing=Timing(extra=transport)) as running:
        yield running


def aws_client(stack: DevStack, service: str) -> Any:
    env = stack.environment
    return boto3.client(
        service,
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
        assert command[:3] == ["python", "-m", "airflow_batch_executor.in_job.bootstrap"]
        assert command[3].startswith(f"s3://{WORKLOAD_BUCKET}/{PREFIX}/global/{record['jobName']}.")
    dumped = json.dumps([requests, list(every_job.values())], default=str)
    assert "eyJ" not in dumped and '"token"' not in dumped

    # The jobs consumed their objects; whatever the executor still had to remove is gone shortly. The
    # removals run in the background of a scheduler on 2 busy cores: allow a minute, ending once done.
    s3 = aws_client(stack, "s3")
    deadline = time.monotonic() + 60
    while (left := s3.list_objects_v2(Bucket=WORKLOAD_BUCKET, Prefix=f"{PREFIX}/").get("Contents")) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.5)
    for item in left or []:
        body = s3.get_object(Bucket=WORKLOAD_BUCKET, Key=item["Key"])["Body"].read()
        assert b"eyJ" not in body and b'"token"' not in body, item["Key"]
    assert not left

    # Every job's whole log (the live task log in the UI) and every try's log as the API serves it.
    logs = aws_client(stack, "logs")
    for record in every_job.values():
        lines = whole_job_log(logs, record)
        assert any(TASK_SDK_START in line for line in lines), f"no Task SDK start in {record['jobName']}"
        assert_no_token(lines, f"the log of job {record['jobName']}")
    for result in results:
        for ti in result.task_instances:
            for try_number in range(1, ti.try_number + 1):
                answer = stack.api.task_log(
                    result.dag_id, result.run_id, ti.task_id, try_number, ti.map_index
                )
                lines = log_events(answer)
                assert lines, f"no task log for {ti.task_id} try {try_number}"
                assert_no_token(
                    [*lines, json.dumps(answer)], f"the task log of {ti.task_id} try {try_number}"
                )

    # What the executor itself logged and printed: every component's log (the scheduler's is where the
    # executor logs) and its CLI, scanned for each token this run wrote to a workload object.
    tokens = set(stack.batch.workload_tokens())
    assert len(tokens) >= len(requests), "every job's object carried a token"
    scanned = {path.name: path.read_text(errors="replace") for path in stack.log_paths()}
    assert any(name.startswith("scheduler") for name in scanned)
    for command in (("jobs",), ("check",), ("render", "per_task_resources", "train")):
        result = stack.airflow_cli("aws-batch-executor", *command)
        scanned[f"airflow aws-batch-executor {' '.join(command)}"] = result.stdout + result.stderr
    assert "job(s) in" in scanned["airflow aws-batch-executor jobs"], "the CLI listed the run's jobs"
    for where, text in scanned.items():
        leaked = sorted(token[:16] + "..." for token in tokens if token in text)
        assert not leaked, f"{len(leaked)} token(s) of this run in {where}: {leaked}"
        assert_no_token(text.splitlines(), where)


def assert_no_token(lines: list[str], where: str) -> None:
    text = "\n".join(lines)
    assert (found := JWT_SHAPED.search(text)) is None, f"a JWT in {where}: {found}"
    values = set(TOKEN_VALUE.findall(text))
    assert values <= {"***"}, f"a token value in {where}: {values}"
    if PRINTS_TOKEN and TASK_SDK_START in text:  # the start line had the token: the bootstrap hid it
        assert "token='***'" in text, where


def whole_job_log(logs: Any, record: dict[str, Any]) -> list[str]:
    """Every line of an ended job's CloudWatch Logs stream, oldest first."""
    container = record["container"]
    options = (container.get("logConfiguration") or {}).get("options") or {}
    return read_stream(logs, options.get("awslogs-group", "/aws/batch/job"), container["logStreamName"])


def request_job_ids(stack: DevStack, requests: list[dict[str, Any]]) -> list[str]:
    client = stack.batch_client()
    ids = []
    for request in requests:
        listed = client.list_jobs(
            jobQueue=request["jobQueue"], filters=[{"name": "JOB_NAME", "values": [request["jobName"]]}]
        )["jobSummaryList"]
        ids += [job["jobId"] for job in listed if job["jobName"] == request["jobName"]]
    return ids
