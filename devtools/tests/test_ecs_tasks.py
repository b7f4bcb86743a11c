"""Each container attempt's ECS task (``container.taskArn``) and its task metadata endpoint (v4)."""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from waiting import describe, drain, log_messages, wait_for_status, wait_until

from batch_devtools.local_batch import LocalBatch

TASK_ARN = re.compile(r"arn:aws:ecs:us-east-1:\d{12}:task/[\w-]+/[0-9a-f]{32}")
BEFORE_STARTING = ("SUBMITTED", "PENDING", "RUNNABLE")
FETCH_METADATA = (
    "import os, sys, urllib.request; uri = os.environ['ECS_CONTAINER_METADATA_URI_V4']; print(uri); "
    "print(urllib.request.urlopen(uri + '/task', timeout=30).read().decode()); "
    "print(urllib.request.urlopen(uri, timeout=30).read().decode(), flush=True); "
    "sys.exit(int(os.environ.get('EXIT_CODE', '0')))"
)
"""Prints its metadata URI, its task's metadata, then its container's, one line each."""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def submit(lb: LocalBatch, batch: Any, name: str, command: list[str], **kwargs: Any) -> str:
    return batch.submit_job(
        jobName=name,
        jobQueue=lb.job_queue,
        jobDefinition=lb.job_definition,
        containerOverrides={"command": command, "environment": kwargs.pop("environment", [])},
        **kwargs,
    )["jobId"]


def metadata_seen(lb: LocalBatch, stream: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """What the job's container printed: its metadata URI, its task's metadata and its container's."""
    uri, task, container = log_messages(lb, stream)
    return uri, json.loads(task), json.loads(container)


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None


def test_a_job_has_its_task_arn_from_starting_on(local_batch: LocalBatch, batch: Any) -> None:
    local_batch.settings.step_delay = 1.0  # long enough that DescribeJobs usually catches STARTING
    job_id = submit(local_batch, batch, unique("ecs-starting"), [sys.executable, "-c", "pass"])
    seen: list[tuple[str, str | None]] = []

    def ended() -> bool:
        job = describe(batch, job_id)
        seen.append((job["status"], job["container"].get("taskArn")))
        return job["status"] in ("SUCCEEDED", "FAILED")

    wait_until(ended, f"{job_id} ended")
    job = describe(batch, job_id)

    # A loaded machine may pass STARTING between two polls (the events test sees every status): each
    # status polled before it has no task ARN, and each from it on has the same one.
    assert job["status"] == "SUCCEEDED"
    assert {arn for status, arn in seen if status in BEFORE_STARTING} <= {None}
    [task_arn] = {arn for status, arn in seen if status not in BEFORE_STARTING}
    assert TASK_ARN.fullmatch(task_arn)
    assert job["container"]["taskArn"] == job["attempts"][0]["container"]["taskArn"] == task_arn


def test_a_job_that_never_reached_starting_has_no_task(local_batch: LocalBatch, batch: Any) -> None:
    name = unique("ecs-cancelled")
    local_batch.faults.stuck_in_runnable(pattern=name)
    job_id = submit(local_batch, batch, name, [sys.executable, "-c", "pass"])
    wait_until(lambda: local_batch.stuck_jobs() == [job_id], f"{job_id} stuck in RUNNABLE")
    batch.cancel_job(jobId=job_id, reason="not needed")

    job = wait_for_status(batch, job_id)

    assert job["status"] == "FAILED" and "taskArn" not in job["container"] and job["attempts"] == []


def test_the_job_reads_its_own_task_from_the_metadata_endpoint(local_batch: LocalBatch, batch: Any) -> None:
    job_id = submit(local_batch, batch, unique("ecs-metadata"), [sys.executable, "-c", FETCH_METADATA])

    job = wait_for_status(batch, job_id)

    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    uri, task, container = metadata_seen(local_batch, job["container"]["logStreamName"])
    task_arn = job["container"]["taskArn"]
    assert uri.startswith(f"{local_batch.endpoint_url}/_local_batch/")
    assert job_id not in uri and task_arn.rsplit("/", 1)[1] not in uri
    [compute_environment] = batch.describe_compute_environments(
        computeEnvironments=[local_batch.environment.compute_environment]
    )["computeEnvironments"]
    assert task["TaskARN"] == task_arn and task["Cluster"] == compute_environment["ecsClusterArn"]
    assert task["Family"] == local_batch.job_definition and task["Containers"] == [container]
    assert container["Labels"]["com.amazonaws.ecs.task-arn"] == task_arn and container["Name"] == "default"
    assert "ECS_CONTAINER_METADATA_URI_V4" not in {item["name"] for item in job["container"]["environment"]}
    assert get(f"{uri}/task") == (404, None)  # the attempt has ended: its endpoint with it


def test_an_unknown_metadata_id_is_not_found(local_batch: LocalBatch) -> None:
    base = f"{local_batch.endpoint_url}/_local_batch/ecs-metadata/{uuid.uuid4().hex}"

    assert get(f"{base}/task") == (404, None)
    assert get(base) == (404, None)


def test_each_attempt_has_its_own_task_and_endpoint(local_batch: LocalBatch, batch: Any) -> None:
    job_id = submit(
        local_batch,
        batch,
        unique("ecs-retried"),
        [sys.executable, "-c", FETCH_METADATA],
        environment=[{"name": "EXIT_CODE", "value": "1"}],
        retryStrategy={"attempts": 2},
    )

    job = wait_for_status(batch, job_id)

    attempts = job["attempts"]
    assert [attempt["container"]["exitCode"] for attempt in attempts] == [1, 1]
    task_arns = [attempt["container"]["taskArn"] for attempt in attempts]
    assert len(set(task_arns)) == 2 and all(TASK_ARN.fullmatch(arn) for arn in task_arns)
    assert job["container"]["taskArn"] == task_arns[-1]
    seen = [metadata_seen(local_batch, attempt["container"]["logStreamName"]) for attempt in attempts]
    assert [task["TaskARN"] for _, task, _ in seen] == task_arns
    assert seen[0][0] != seen[1][0]


def test_array_children_have_their_own_tasks_and_the_parent_none(local_batch: LocalBatch, batch: Any) -> None:
    parent_id = batch.submit_job(
        jobName=unique("ecs-array"),
        jobQueue=local_batch.job_queue,
        jobDefinition=local_batch.job_definition,
        arrayProperties={"size": 2},
        containerOverrides={"command": [sys.executable, "-c", FETCH_METADATA]},
    )["jobId"]

    parent = wait_for_status(batch, parent_id)

    assert parent["status"] == "SUCCEEDED" and "taskArn" not in parent["container"]
    children = batch.describe_jobs(jobs=[f"{parent_id}:0", f"{parent_id}:1"])["jobs"]
    task_arns = [child["container"]["taskArn"] for child in children]
    assert len(set(task_arns)) == 2 and all(TASK_ARN.fullmatch(arn) for arn in task_arns)
    for child, task_arn in zip(children, task_arns, strict=True):
        assert child["attempts"][0]["container"]["taskArn"] == task_arn
        _, task, _ = metadata_seen(local_batch, child["container"]["logStreamName"])
        assert task["TaskARN"] == task_arn


def test_the_events_of_a_started_job_carry_its_task_arn(local_batch: LocalBatch, batch: Any) -> None:
    local_batch.settings.publish_events = True
    drain(local_batch, until=lambda _: False, timeout=0.5)
    job_id = submit(local_batch, batch, unique("ecs-events"), [sys.executable, "-c", "pass"])

    def succeeded(got: list[dict[str, Any]]) -> bool:
        return any(m["detail"]["jobId"] == job_id and m["detail"]["status"] == "SUCCEEDED" for m in got)

    details = [m["detail"] for m in drain(local_batch, succeeded) if m["detail"]["jobId"] == job_id]

    task_arn = describe(batch, job_id)["container"]["taskArn"]
    assert [(d["status"], d["container"].get("taskArn")) for d in details] == [
        ("SUBMITTED", None),
        ("PENDING", None),
        ("RUNNABLE", None),
        ("STARTING", task_arn),
        ("RUNNING", task_arn),
        ("SUCCEEDED", task_arn),
    ]


@pytest.mark.parametrize("step_delay", [0.05, 0.0])
def test_a_held_job_gets_its_task_too(local_batch: LocalBatch, batch: Any, step_delay: float) -> None:
    """Hold mode without steps goes from SUBMITTED straight to RUNNING: its attempt still has a task."""
    local_batch.settings.job_mode, local_batch.settings.step_delay = "hold", step_delay
    job_id = submit(local_batch, batch, unique("ecs-held"), [sys.executable, "-c", "pass"])

    running = wait_for_status(batch, job_id, ("RUNNING",))
    batch.terminate_job(jobId=job_id, reason="done")
    job = wait_for_status(batch, job_id)

    assert TASK_ARN.fullmatch(running["container"]["taskArn"])
    assert job["attempts"][0]["container"]["taskArn"] == running["container"]["taskArn"]
