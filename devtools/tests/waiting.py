"""Waiting on conditions of a local Batch, for tests that drive it over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from batch_devtools.local_batch import LocalBatch

T = TypeVar("T")
FINAL = ("SUCCEEDED", "FAILED")


def wait_until(condition: Callable[[], T], what: str, timeout: float = 15.0) -> T:
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


def wait_for_status(batch: Any, job_id: str, statuses: tuple[str, ...] = FINAL, timeout: float = 15.0) -> Any:
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


def wait_for_final(lb: LocalBatch, job_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """The job's ``job_final`` history entry, once it is there (also for jobs that vanish)."""
    return wait_until(
        lambda: next(iter(events_of(lb, job_id, "job_final")), None), f"{job_id} final", timeout
    )


def log_messages(lb: LocalBatch, stream: str) -> list[str]:
    events = lb.client("logs").get_log_events(
        logGroupName=lb.log_group, logStreamName=stream, startFromHead=True
    )
    return [event["message"] for event in events["events"]]
