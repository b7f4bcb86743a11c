"""Waiting on conditions of a local Batch, for tests that drive it over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from batch_devtools.local_batch import LocalBatch

T = TypeVar("T")
FINAL = ("SUCCEEDED", "FAILED")
TIMEOUT = 60.0
"""How long a wait may take before it fails. Generous on purpose: a wait ends as soon as its condition
holds, and on a loaded CI machine (two cores, load 6 to 12) a job with three attempts starts three
Python processes, each of which may take seconds to start."""


def wait_until(condition: Callable[[], T], what: str, timeout: float = TIMEOUT) -> T:
    """The first truthy value of ``condition()``; fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so after {timeout}s")
        time.sleep(0.02)
    return value


def describe(batch: Any, job_id: str) -> dict[str, Any]:
    """The DescribeJobs record of one job."""
    return batch.describe_jobs(jobs=[job_id])["jobs"][0]


def wait_for_status(
    batch: Any, job_id: str, statuses: tuple[str, ...] = FINAL, timeout: float = TIMEOUT
) -> Any:
    """The job's record once its status is one of ``statuses``; fails naming the status it is in."""
    last: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        job = last["job"] = describe(batch, job_id)
        return job if job["status"] in statuses else None

    try:
        return wait_until(reached, f"job {job_id} in {statuses}", timeout)
    except AssertionError as error:
        raise AssertionError(f"{error}; it is {last['job']['status']}") from None


def events_of(lb: LocalBatch, job_id: str, event: str | None = None) -> list[dict[str, Any]]:
    """The history entries of one job (of one kind, when given)."""
    return [e for e in lb.history() if e.get("jobId") == job_id and event in (None, e["event"])]


def wait_for_final(lb: LocalBatch, job_id: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The job's ``job_final`` history entry, once it is there (also for jobs that vanish)."""
    return wait_until(
        lambda: next(iter(events_of(lb, job_id, "job_final")), None), f"{job_id} final", timeout
    )


def take_messages(sqs: Any, queue_url: str) -> list[str]:
    """The bodies of the messages the queue hands over now (up to ten), deleted so none comes twice.

    One DeleteMessageBatch call per ten messages, not one DeleteMessage each: hundreds of messages
    cost a few dozen HTTP calls, which stays quick even on a loaded machine.
    """
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    )
    if messages:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        answer = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        assert not answer.get("Failed"), f"messages not deleted: {answer['Failed']}"
    return [message["Body"] for message in messages]


def drain(lb: LocalBatch, until: Any, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
    """Every message on the status queue (deleted as read) until ``until(messages)``."""
    sqs, got = lb.client("sqs"), []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(got):
        got.extend(json.loads(body) for body in take_messages(sqs, lb.status_queue_url))
        time.sleep(0.05)
    return got


def log_messages(lb: LocalBatch, stream: str) -> list[str]:
    events = lb.client("logs").get_log_events(
        logGroupName=lb.log_group, logStreamName=stream, startFromHead=True
    )
    return [event["message"] for event in events["events"]]
