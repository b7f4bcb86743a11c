"""Array jobs (SubmitJob with ``arrayProperties.size``) in the local Batch, over real HTTP with boto3."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError
from waiting import FINAL, describe, events_of, log_messages, take_messages, wait_for_status, wait_until

from batch_devtools.local_batch import LocalBatch, LocalBatchControl
from batch_devtools.local_batch.faults import subject_matches

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]
BOOTSTRAP = ["python", "-m", "airflow_batch_executor.in_job.bootstrap"]
CONTAINER_EXITED = "Essential container in task exited"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def submit_array(lb: LocalBatch, batch: Any, name: str, size: int, command: list[str]) -> str:
    return batch.submit_job(
        jobName=name,
        jobQueue=lb.job_queue,
        jobDefinition=lb.job_definition,
        arrayProperties={"size": size},
        containerOverrides={"command": command},
    )["jobId"]


def children(batch: Any, parent: str, size: int) -> list[dict[str, Any]]:
    return batch.describe_jobs(jobs=[f"{parent}:{index}" for index in range(size)])["jobs"]


def wait_for_children(batch: Any, parent: str, size: int, status: str) -> None:
    wait_until(
        lambda: all(job["status"] == status for job in children(batch, parent, size)),
        f"every child of {parent} is {status}",
    )


def summary(**counts: int) -> dict[str, int]:
    statuses = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
    return {status: counts.get(status, 0) for status in statuses}


def test_children_run_the_command_with_their_own_id_index_and_log(
    local_batch: LocalBatch, batch: Any
) -> None:
    script = (
        "import os; print(os.environ['AWS_BATCH_JOB_ID'], os.environ['AWS_BATCH_JOB_ARRAY_INDEX'], "
        "os.environ['AWS_BATCH_JOB_ARRAY_SIZE'], os.environ['AWS_BATCH_JOB_ATTEMPT'])"
    )
    calls_before = local_batch.api_calls().get("submitjob", 0)
    name = unique("array")

    parent = submit_array(local_batch, batch, name, 3, [sys.executable, "-c", script])
    job = wait_for_status(batch, parent)

    assert job["status"] == "SUCCEEDED" and job["jobName"] == name
    assert job["arrayProperties"] == {"statusSummary": summary(SUCCEEDED=3), "size": 3}
    assert job["stoppedAt"] == max(child["stoppedAt"] for child in children(batch, parent, 3))
    assert "startedAt" not in job and job["attempts"] == []
    streams = set()
    for index, child in enumerate(children(batch, parent, 3)):
        assert (child["jobId"], child["jobName"], child["status"]) == (f"{parent}:{index}", name, "SUCCEEDED")
        assert child["arrayProperties"] == {"index": index}
        assert (child["statusReason"], child["container"]["exitCode"]) == (CONTAINER_EXITED, 0)
        stream = child["container"]["logStreamName"]
        assert ":" not in stream and len(child["attempts"]) == 1
        assert log_messages(local_batch, stream) == [f"{parent}:{index} {index} 3 1"]
        streams.add(stream)
    assert len(streams) == 3
    assert local_batch.api_calls()["submitjob"] == calls_before + 1
    assert [entry["jobId"] for entry in events_of(local_batch, parent, "submit")] == [parent]
    assert all(events_of(local_batch, f"{parent}:{index}", "submit") == [] for index in range(3))


def test_a_failing_child_fails_the_parent_once_its_siblings_succeeded(
    local_batch: LocalBatch, batch: Any
) -> None:
    script = "import os, sys; sys.exit(1 if os.environ['AWS_BATCH_JOB_ARRAY_INDEX'] == '1' else 0)"

    parent = submit_array(local_batch, batch, unique("one-fails"), 3, [sys.executable, "-c", script])
    job = wait_for_status(batch, parent)

    assert job["status"] == "FAILED" and "statusReason" not in job
    assert job["arrayProperties"]["statusSummary"] == summary(SUCCEEDED=2, FAILED=1)
    kids = children(batch, parent, 3)
    assert [(kid["status"], kid["container"]["exitCode"]) for kid in kids] == [
        ("SUCCEEDED", 0),
        ("FAILED", 1),
        ("SUCCEEDED", 0),
    ]
    assert kids[1]["statusReason"] == CONTAINER_EXITED
    assert job["stoppedAt"] == max(kid["stoppedAt"] for kid in kids)


def test_terminating_one_child_stops_only_that_child(local_batch: LocalBatch, batch: Any) -> None:
    parent = submit_array(local_batch, batch, unique("one-stops"), 3, SLEEP)
    wait_for_children(batch, parent, 3, "RUNNING")
    running = describe(batch, parent)
    assert running["status"] == "PENDING"
    assert running["arrayProperties"]["statusSummary"] == summary(RUNNING=3)

    batch.terminate_job(jobId=f"{parent}:1", reason="only this one")

    stopped = wait_for_status(batch, f"{parent}:1")
    assert (stopped["status"], stopped["statusReason"], stopped["container"]["exitCode"]) == (
        "FAILED",
        "only this one",
        143,
    )
    assert [kid["status"] for kid in children(batch, parent, 3)] == ["RUNNING", "FAILED", "RUNNING"]
    job = describe(batch, parent)
    assert job["status"] == "PENDING"
    assert job["arrayProperties"]["statusSummary"] == summary(RUNNING=2, FAILED=1)
    batch.terminate_job(jobId=parent, reason="cleanup")
    assert wait_for_status(batch, parent)["status"] == "FAILED"


def test_terminating_the_parent_stops_every_child(local_batch: LocalBatch, batch: Any) -> None:
    parent = submit_array(local_batch, batch, unique("all-stop"), 3, SLEEP)
    wait_for_children(batch, parent, 3, "RUNNING")

    batch.terminate_job(jobId=parent, reason="stop the array")
    job = wait_for_status(batch, parent)

    assert (job["status"], job["statusReason"]) == ("FAILED", "stop the array")
    assert job["arrayProperties"]["statusSummary"] == summary(FAILED=3)
    for kid in children(batch, parent, 3):
        assert (kid["status"], kid["statusReason"], kid["container"]["exitCode"]) == (
            "FAILED",
            "stop the array",
            143,
        )
    assert [entry["reason"] for entry in events_of(local_batch, parent, "terminate")] == ["stop the array"]
    assert all(local_batch.job_pid(f"{parent}:{index}") is None for index in range(3))


def test_list_jobs_by_array_job_id_lists_the_children_and_by_queue_the_parent(
    local_batch: LocalBatch, batch: Any
) -> None:
    name = unique("listed")
    parent = submit_array(local_batch, batch, name, 3, SLEEP)
    wait_for_children(batch, parent, 3, "RUNNING")

    running = batch.list_jobs(arrayJobId=parent)["jobSummaryList"]
    by_status = batch.list_jobs(arrayJobId=parent, jobStatus="RUNNING")["jobSummaryList"]
    none_pending = batch.list_jobs(arrayJobId=parent, jobStatus="PENDING")["jobSummaryList"]
    in_queue = batch.list_jobs(
        jobQueue=local_batch.job_queue, filters=[{"name": "JOB_NAME", "values": [name]}]
    )["jobSummaryList"]

    expected = [(f"{parent}:{index}", {"index": index}) for index in range(3)]
    assert sorted((job["jobId"], job["arrayProperties"]) for job in running) == expected
    assert sorted(job["jobId"] for job in by_status) == [job_id for job_id, _ in expected]
    assert none_pending == []
    assert [(job["jobId"], job["status"], job["arrayProperties"]) for job in in_queue] == [
        (parent, "PENDING", {"size": 3})
    ]
    batch.terminate_job(jobId=parent, reason="cleanup")
    wait_for_status(batch, parent)


def test_each_child_and_the_parent_publish_their_own_events(local_batch: LocalBatch, batch: Any) -> None:
    local_batch.settings.publish_events = True
    sqs = local_batch.client("sqs")
    while take_messages(sqs, local_batch.status_queue_url):
        pass
    name = unique("events")
    local_batch.faults.drop_events(pattern=f"{name}:1", status="RUNNING")
    parent = submit_array(local_batch, batch, name, 3, [sys.executable, "-c", "print('hi')"])
    seen: dict[str, list[dict[str, Any]]] = {}

    def parent_ended() -> bool:
        for body in take_messages(sqs, local_batch.status_queue_url):
            detail = json.loads(body)["detail"]
            seen.setdefault(detail["jobId"], []).append(detail)
        return any(detail["status"] in FINAL for detail in seen.get(parent, []))

    wait_until(parent_ended, f"array {parent} published its final event")

    plain = ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]
    for index in range(3):
        details = seen[f"{parent}:{index}"]
        expected = [status for status in plain if index != 1 or status != "RUNNING"]
        assert [detail["status"] for detail in details] == expected, f"child {index}"
        assert all(detail["arrayProperties"] == {"index": index} for detail in details)
    assert [detail["status"] for detail in seen[parent]] == ["SUBMITTED", "PENDING", "SUCCEEDED"]
    assert seen[parent][0]["arrayProperties"] == {"statusSummary": summary(SUBMITTED=3), "size": 3}
    assert seen[parent][-1]["arrayProperties"] == {"statusSummary": summary(SUCCEEDED=3), "size": 3}


@pytest.mark.parametrize("size", [1, 10_001])
def test_an_array_size_aws_refuses_is_refused(local_batch: LocalBatch, batch: Any, size: int) -> None:
    name = unique("bad-size")

    with pytest.raises(ClientError) as raised:
        submit_array(local_batch, batch, name, size, SLEEP)

    assert raised.value.response["Error"]["Code"] == "ClientException"
    assert "between 2 and 10,000" in raised.value.response["Error"]["Message"]
    assert [entry for entry in local_batch.history() if entry.get("jobName") == name] == []


def test_a_fault_pattern_names_one_child_or_all_of_them() -> None:
    assert subject_matches("etl:2", "etl:2") and subject_matches("etl:2", "etl")
    assert subject_matches("etl:2", "etl:*") and subject_matches("etl:2", "*")
    assert not subject_matches("etl:2", "etl:1") and not subject_matches("etl", "etl:*")


def test_held_children_of_a_large_array_need_no_thread(local_batch: LocalBatch, batch: Any) -> None:
    local_batch.settings.job_mode = "hold"
    name = unique("held")
    local_batch.faults.fail_after_start(pattern=f"{name}:7", exit_code=3)

    parent = submit_array(local_batch, batch, name, 50, SLEEP)
    ids = [f"{parent}:{index}" for index in range(50)]
    wait_until(
        lambda: describe(batch, parent)["arrayProperties"]["statusSummary"] == summary(RUNNING=49, FAILED=1),
        "49 held children run, child 7 failed",
    )

    jobs = [local_batch.runtime.jobs.get(job_id) for job_id in ids]
    assert all(job is not None and job.held and not job.is_alive() for job in jobs)
    assert describe(batch, ids[7])["container"]["exitCode"] == 3
    assert len(batch.list_jobs(arrayJobId=parent, jobStatus="RUNNING")["jobSummaryList"]) == 49
    assert describe(batch, parent)["status"] == "PENDING"
    LocalBatchControl(local_batch.endpoint_url).exit_jobs(ids)
    job = describe(batch, parent)
    assert job["status"] == "FAILED"
    assert job["arrayProperties"]["statusSummary"] == summary(SUCCEEDED=49, FAILED=1)


def test_hold_mode_refuses_an_array_one_of_whose_children_a_retry_fault_names(
    local_batch: LocalBatch, batch: Any
) -> None:
    local_batch.settings.job_mode = "hold"
    name = unique("held-retry")
    local_batch.faults.retry_after_start(pattern=f"{name}:1")

    with pytest.raises(ClientError, match="retry_after_start"):
        submit_array(local_batch, batch, name, 2, SLEEP)


def test_cancelling_a_held_parent_cancels_only_the_children_not_started(
    local_batch: LocalBatch, batch: Any
) -> None:
    local_batch.settings.job_mode = "hold"
    name = unique("cancel")
    local_batch.faults.stuck_in_runnable(pattern=f"{name}:2")
    parent = submit_array(local_batch, batch, name, 3, SLEEP)
    wait_until(
        lambda: [kid["status"] for kid in children(batch, parent, 3)] == ["RUNNING", "RUNNING", "RUNNABLE"],
        "two children run, child 2 waits for capacity",
    )

    batch.cancel_job(jobId=parent, reason="not needed")

    cancelled = describe(batch, f"{parent}:2")
    assert (cancelled["status"], cancelled["statusReason"]) == ("FAILED", "not needed")
    assert [kid["status"] for kid in children(batch, parent, 3)] == ["RUNNING", "RUNNING", "FAILED"]
    assert describe(batch, parent)["status"] == "PENDING"
    batch.terminate_job(jobId=parent, reason="cleanup")
    job = describe(batch, parent)
    assert (job["status"], job["statusReason"]) == ("FAILED", "cleanup")


def test_inline_children_run_the_bootstrap_command_knowing_their_index(
    local_batch: LocalBatch, batch: Any
) -> None:
    """Every child runs the same S3 bootstrap command; until the bootstrap picks its object by index, the
    one object named here is absent, so each child's fetch fails alike and the race for it is moot."""
    local_batch.settings.job_mode = "inline"
    uri = f"s3://{local_batch.environment.workload_bucket}/workloads/{uuid.uuid4().hex}.json"

    parent = submit_array(local_batch, batch, unique("inline"), 3, [*BOOTSTRAP, uri])
    job = wait_for_status(batch, parent)

    fetches = [events_of(local_batch, f"{parent}:{index}", "fetch") for index in range(3)]
    assert [[(e["arrayIndex"], e["uri"], e["outcome"]) for e in entries] for entries in fetches] == [
        [(index, uri, 65)] for index in range(3)
    ]
    assert job["status"] == "FAILED"
    assert job["arrayProperties"]["statusSummary"] == summary(FAILED=3)
