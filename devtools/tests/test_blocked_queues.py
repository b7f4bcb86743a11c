"""Blocked job queues (jobs held in RUNNABLE with the queue's reason, "Batch Job Queue Blocked"
events) and GetJobQueueSnapshot, as AWS Batch has them, through real boto3 calls."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from waiting import describe, take_messages, wait_for_status, wait_until

from batch_devtools.local_batch import CAPACITY_REASON, MISCONFIGURATION_REASON, Faults, LocalBatch
from batch_devtools.local_batch.control import LocalBatchControl

BLOCKED = MISCONFIGURATION_REASON
QUEUE_BLOCKED = "Batch Job Queue Blocked"
OTHER_REASON = "MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS - Batch can't create compute resources."


@pytest.fixture
def hold(local_batch: LocalBatch) -> LocalBatch:
    local_batch.settings.job_mode = "hold"
    local_batch.settings.hold_seconds = 0.05
    return local_batch


def submit(lb: LocalBatch, name: str, job_queue: str | None = None) -> str:
    return lb.client("batch").submit_job(
        jobName=name,
        jobQueue=job_queue or lb.job_queue,
        jobDefinition=lb.job_definition,
        containerOverrides={"command": ["true"]},
    )["jobId"]


def waiting_with(batch: Any, job_id: str, reason: str) -> dict[str, Any]:
    """The job's record once it is RUNNABLE with this statusReason."""
    return wait_until(
        lambda: (
            (job := describe(batch, job_id))["status"] == "RUNNABLE"
            and job.get("statusReason") == reason
            and job
        ),
        f"job {job_id} RUNNABLE with {reason!r}",
    )


def time_passes(lb: LocalBatch) -> None:
    """Wait until a job of the queue that is not blocked has run to its end: meanwhile a job of the
    blocked queue had every chance to start, had it not been held."""
    other = submit(lb, "unblocked", lb.second_job_queue)
    assert wait_for_status(lb.client("batch"), other)["status"] == "SUCCEEDED"


def now_ms() -> int:
    return int(time.time() * 1000)


def test_a_queue_is_blocked_by_name_or_arn_until_unblocked_or_cleared() -> None:
    faults = Faults()
    faults.block_queue("arn:aws:batch:us-east-1:123456789012:job-queue/etl", BLOCKED)
    first = faults.queue_block("etl")
    faults.apply({"fault": "block_queue", "job_queue": "etl", "reason": OTHER_REASON})
    second = faults.queue_block("etl")
    assert first is not None and second is not None
    assert (first.reason, second.reason, second.since) == (BLOCKED, OTHER_REASON, first.since)
    assert faults.to_dict()["blocked_queues"] == {"etl": OTHER_REASON}
    faults.apply({"fault": "unblock_queue", "job_queue": "etl"})
    assert faults.queue_block("etl") is None
    faults.block_queue("etl", BLOCKED)
    faults.clear()
    assert faults.to_dict()["blocked_queues"] == {}
    with pytest.raises(ValueError, match="reason"):
        faults.block_queue("etl", "")


def test_a_job_of_a_blocked_queue_waits_in_runnable_with_the_reason_until_unblocked(
    local_batch: LocalBatch, batch: Any
) -> None:
    local_batch.faults.block_queue(local_batch.environment.job_queue_arn, BLOCKED)
    job_id = submit(local_batch, "blocked-process")
    waiting_with(batch, job_id, BLOCKED)
    listed = batch.list_jobs(jobQueue=local_batch.job_queue, jobStatus="RUNNABLE")["jobSummaryList"]
    assert {job["jobId"]: job.get("statusReason") for job in listed}[job_id] == BLOCKED

    time_passes(local_batch)
    assert describe(batch, job_id)["status"] == "RUNNABLE"
    local_batch.faults.unblock_queue(local_batch.job_queue)
    assert describe(batch, job_id).get("statusReason") is None  # cleared at once, before it moves on
    job = wait_for_status(batch, job_id)
    assert (job["status"], job["container"]["exitCode"]) == ("SUCCEEDED", 0)


def test_jobs_already_waiting_are_blocked_and_can_be_terminated_or_cancelled(
    local_batch: LocalBatch, batch: Any
) -> None:
    local_batch.faults.stuck_in_runnable(pattern="waiting-*", count=None)
    jobs = [submit(local_batch, f"waiting-{index}") for index in range(2)]
    for job_id in jobs:
        waiting_with(batch, job_id, CAPACITY_REASON)

    local_batch.faults.block_queue(local_batch.job_queue, BLOCKED)  # applies to waiting jobs at once
    assert [describe(batch, job_id)["statusReason"] for job_id in jobs] == [BLOCKED, BLOCKED]
    local_batch.faults.unblock_queue(local_batch.job_queue)
    assert [describe(batch, job_id)["statusReason"] for job_id in jobs] == [CAPACITY_REASON] * 2
    assert sorted(local_batch.stuck_jobs()) == sorted(jobs)

    local_batch.faults.block_queue(local_batch.job_queue, BLOCKED)
    local_batch.release_stuck_jobs(jobs)  # capacity came, but the queue is still blocked
    batch.terminate_job(jobId=jobs[0], reason="given up")
    batch.cancel_job(jobId=jobs[1], reason="not needed")
    ended = [wait_for_status(batch, job_id) for job_id in jobs]
    assert [(job["status"], job["statusReason"]) for job in ended] == [
        ("FAILED", "given up"),
        ("FAILED", "not needed"),
    ]
    assert all("startedAt" not in job for job in ended)


def blocked_events(lb: LocalBatch, job_id: str, until: Any) -> list[dict[str, Any]]:
    """The status queue's messages about this job (deleted as read) until ``until(messages)``."""
    sqs, got = lb.client("sqs"), []
    wait_until(
        lambda: (
            got.extend(
                message
                for message in map(json.loads, take_messages(sqs, lb.status_queue_url))
                if message["detail"]["jobId"] == job_id
            )
            or until(got)
        ),
        f"events of {job_id}",
    )
    return got


def queue_blocked(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [message for message in messages if message["detail-type"] == QUEUE_BLOCKED]


def test_a_blocked_job_publishes_a_queue_blocked_event_for_each_reason(
    local_batch: LocalBatch, batch: Any
) -> None:
    local_batch.settings.publish_events = True
    local_batch.faults.drop_events(pattern="blocked-events", count=None, status="RUNNABLE")
    local_batch.faults.block_queue(local_batch.job_queue, BLOCKED)
    job_id = submit(local_batch, "blocked-events")

    first = blocked_events(local_batch, job_id, queue_blocked)
    [event] = queue_blocked(first)
    queue_arn = local_batch.environment.job_queue_arn
    assert (event["source"], event["region"]) == ("aws.batch", local_batch.region)
    assert event["resources"] == [event["detail"]["jobArn"], queue_arn]
    detail = event["detail"]
    assert (detail["jobId"], detail["status"], detail["statusReason"]) == (job_id, "RUNNABLE", BLOCKED)
    assert detail["jobQueue"] == queue_arn and detail["attempts"] == []

    local_batch.faults.block_queue(local_batch.job_queue, OTHER_REASON)
    again = blocked_events(local_batch, job_id, queue_blocked)
    assert [event["detail"]["statusReason"] for event in queue_blocked(again)] == [OTHER_REASON]

    local_batch.faults.unblock_queue(local_batch.job_queue)
    rest = blocked_events(
        local_batch, job_id, lambda got: any(m["detail"]["status"] == "SUCCEEDED" for m in got)
    )
    statuses = [m["detail"]["status"] for m in first + again + rest if m["detail-type"] != QUEUE_BLOCKED]
    # drop_events hit the RUNNABLE state change only: event faults never touch Queue Blocked events
    assert "RUNNABLE" not in statuses and "SUCCEEDED" in statuses


def test_a_blocked_job_publishes_again_only_when_the_reason_changes(
    hold: LocalBatch, batch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hold.settings.publish_events = True
    publisher = hold.runtime.events
    assert publisher is not None
    published: list[str] = []
    monkeypatch.setattr(publisher, "publish", lambda detail: None)
    monkeypatch.setattr(publisher, "publish_blocked", lambda detail: published.append(detail["statusReason"]))
    hold.faults.block_queue(hold.job_queue, BLOCKED)
    job_id = submit(hold, "blocked-reasons")
    waiting_with(batch, job_id, BLOCKED)

    hold.faults.block_queue(hold.job_queue, BLOCKED)
    hold.faults.block_queue(hold.job_queue, OTHER_REASON)
    assert published == [BLOCKED, OTHER_REASON]
    hold.faults.unblock_queue(hold.job_queue)
    assert wait_for_status(batch, job_id)["status"] == "SUCCEEDED"
    assert published == [BLOCKED, OTHER_REASON]


def test_a_held_job_stays_blocked_and_goes_on_once_unblocked_over_http(hold: LocalBatch, batch: Any) -> None:
    control = LocalBatchControl(hold.endpoint_url)
    faults = control.block_queue(hold.environment.job_queue_arn, BLOCKED)
    assert faults["blocked_queues"] == {hold.job_queue: BLOCKED}
    job_id = submit(hold, "blocked-held")
    waiting_with(batch, job_id, BLOCKED)

    time_passes(hold)
    assert describe(batch, job_id)["statusReason"] == BLOCKED
    unblocked_at = now_ms()
    assert control.unblock_queue(hold.job_queue)["blocked_queues"] == {}
    job = wait_for_status(batch, job_id)
    assert job["status"] == "SUCCEEDED" and job["startedAt"] >= unblocked_at

    control.block_queue(hold.job_queue, BLOCKED)
    cleared = submit(hold, "blocked-cleared")
    waiting_with(batch, cleared, BLOCKED)
    control.clear_faults()  # what a test harness does between tests: no queue stays blocked
    assert wait_for_status(batch, cleared)["status"] == "SUCCEEDED"


def test_a_held_job_nobody_read_is_held_from_when_it_reached_runnable(hold: LocalBatch, batch: Any) -> None:
    hold.faults.block_queue(hold.job_queue, BLOCKED)
    job_id = submit(hold, "blocked-unread")
    time_passes(hold)  # never read meanwhile: without the block it would be RUNNING by now
    unblocked_at = now_ms()
    hold.faults.unblock_queue(hold.job_queue)
    job = wait_for_status(batch, job_id)
    assert job["status"] == "SUCCEEDED" and job["startedAt"] >= unblocked_at


def snapshot(batch: Any, job_queue: str) -> list[dict[str, Any]]:
    return batch.get_job_queue_snapshot(jobQueue=job_queue)["frontOfQueue"]["jobs"]


def test_the_snapshot_lists_the_first_100_runnable_jobs_oldest_first(hold: LocalBatch, batch: Any) -> None:
    hold.settings.step_delay = 0
    hold.faults.block_queue(hold.job_queue, BLOCKED)
    request = {"jobQueue": hold.job_queue, "jobDefinition": hold.job_definition}
    ids = LocalBatchControl(hold.endpoint_url).create_jobs(
        [{**request, "jobName": f"queued-{index}"} for index in range(105)]
    )
    arns = [job["jobArn"] for job in batch.describe_jobs(jobs=ids[:100])["jobs"]]
    hold.clear_api_calls()

    answer = batch.get_job_queue_snapshot(jobQueue=hold.environment.job_queue_arn)["frontOfQueue"]
    front = answer["jobs"]
    assert [job["jobArn"] for job in front] == arns
    times = [job["earliestTimeAtPosition"] for job in front]
    assert times == sorted(times) and times[-1] <= answer["lastUpdatedAt"]
    assert snapshot(batch, hold.job_queue) == front
    assert snapshot(batch, hold.second_job_queue) == []
    assert hold.api_calls() == {"getjobqueuesnapshot": 3}


def test_the_snapshot_orders_jobs_by_when_they_became_runnable(hold: LocalBatch, batch: Any) -> None:
    hold.faults.block_queue(hold.job_queue, BLOCKED)
    hold.settings.step_delay = 0.2
    slow = submit(hold, "queued-slow")  # RUNNABLE 0.4 s after it was submitted
    hold.settings.step_delay = 0
    fast = submit(hold, "queued-fast")  # RUNNABLE at once
    waiting_with(batch, slow, BLOCKED)

    arns = {describe(batch, job_id)["jobArn"]: job_id for job_id in (slow, fast)}
    assert [arns[job["jobArn"]] for job in snapshot(batch, hold.job_queue)] == [fast, slow]
    hold.faults.unblock_queue(hold.job_queue)
    # the fast one (step_delay 0) goes on at once; the slow one spends the rest of its RUNNABLE step
    assert fast not in [arns[job["jobArn"]] for job in snapshot(batch, hold.job_queue)]


def test_an_unknown_queue_is_a_client_exception(local_batch: LocalBatch, batch: Any) -> None:
    with pytest.raises(ClientError) as caught:
        batch.get_job_queue_snapshot(jobQueue="no-such-queue")
    error = caught.value.response
    assert error["Error"] == {"Code": "ClientException", "Message": "Job queue no-such-queue does not exist"}
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ValueError, match="no-such-queue does not exist"):
        local_batch.faults.block_queue("no-such-queue", BLOCKED)
    with pytest.raises(ValueError, match="no-such-queue does not exist"):
        LocalBatchControl(local_batch.endpoint_url).block_queue("no-such-queue", BLOCKED)
