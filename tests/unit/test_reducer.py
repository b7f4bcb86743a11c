"""Which Batch job state-change events are news: duplicates, reordering, final states, bad messages."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_batch_executor.status.reducer import Novelty, StatusEvent, novelty, parse_event, progress_of

ATTEMPT = {"container": {"exitCode": 0}, "startedAt": 1, "stoppedAt": 2}


def record(status: str, attempts: int = 0, **extra: Any) -> dict[str, Any]:
    return {"jobId": "job-1", "status": status, "attempts": [ATTEMPT] * attempts, **extra}


def event(status: str, attempts: int = 0) -> StatusEvent:
    return StatusEvent("job-1", status, record(status, attempts))


# What Batch really sends for one job: a plain success, and a job retried by its retryStrategy
# (back to RUNNABLE with one attempt on record) that fails for good on its second attempt.
PLAIN = [
    record("SUBMITTED"),
    record("PENDING"),
    record("RUNNABLE"),
    record("STARTING"),
    record("RUNNING"),
    record("SUCCEEDED", 1),
]
RETRIED = [
    record("SUBMITTED"),
    record("PENDING"),
    record("RUNNABLE"),
    record("STARTING"),
    record("RUNNING"),
    record("RUNNABLE", 1),
    record("STARTING", 1),
    record("RUNNING", 1),
    record("FAILED", 2),
]
NEVER_STARTED = [record("SUBMITTED"), record("PENDING"), record("RUNNABLE"), record("FAILED")]


def aws_message(detail: dict[str, Any], /, **override: Any) -> str:
    message = {
        "version": "0",
        "id": "c8f9c4b5-76e5-d76a-f980-7011e206042b",
        "detail-type": "Batch Job State Change",
        "source": "aws.batch",
        "account": "123456789012",
        "time": "2026-11-22T00:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:batch:us-east-1:123456789012:job/job-1"],
        "detail": detail,
    }
    return json.dumps({**message, **override})


def apply_all(events: list[StatusEvent], known: tuple[int, int] | None, status: str | None) -> str | None:
    """Apply what the reducer calls news, as the supervisor does; returns the final applied status."""
    for item in events:
        if novelty(known, status, item) is Novelty.NEWS:
            known, status = item.progress, item.status
    return status


@pytest.mark.parametrize("sequence", [PLAIN, RETRIED, NEVER_STARTED], ids=["plain", "retried", "never"])
@given(data=st.data())
def test_any_order_and_any_duplicates_end_on_the_sequences_last_status(
    sequence: list[dict[str, Any]], data: st.DataObject
) -> None:
    delivered = data.draw(st.lists(st.sampled_from(sequence), max_size=3 * len(sequence)))
    delivered = data.draw(st.permutations(delivered + sequence))
    events = [StatusEvent("job-1", item["status"], item) for item in delivered]

    assert apply_all(events, progress_of({"status": "SUBMITTED"}), "SUBMITTED") == sequence[-1]["status"]
    assert apply_all(events, None, None) == sequence[-1]["status"]


@given(st.permutations(PLAIN))
def test_a_status_never_moves_backwards(delivered: list[dict[str, Any]]) -> None:
    known, status, applied = None, None, []
    for item in delivered:
        incoming = StatusEvent("job-1", item["status"], item)
        if novelty(known, status, incoming) is Novelty.NEWS:
            known, status = incoming.progress, incoming.status
            applied.append(incoming.progress)
    assert applied == sorted(applied)


def test_the_same_status_and_attempt_count_is_a_duplicate() -> None:
    assert novelty((0, 4), "RUNNING", event("RUNNING")) is Novelty.DUPLICATE


def test_an_older_status_is_stale() -> None:
    assert novelty((0, 4), "RUNNING", event("RUNNABLE")) is Novelty.STALE


def test_a_retry_back_to_runnable_is_news() -> None:
    assert novelty((0, 4), "RUNNING", event("RUNNABLE", attempts=1)) is Novelty.NEWS


@pytest.mark.parametrize("final", ["SUCCEEDED", "FAILED"])
def test_a_final_status_is_never_left(final: str) -> None:
    known = progress_of(record(final, 1))
    assert novelty(known, final, event(final, 1)) is Novelty.DUPLICATE
    other = "FAILED" if final == "SUCCEEDED" else "SUCCEEDED"
    assert novelty(known, final, event(other, 1)) is Novelty.STALE
    assert novelty(known, final, event("RUNNABLE", 2)) is Novelty.STALE


def test_a_job_nothing_is_known_of_takes_any_event() -> None:
    assert novelty(None, None, event("RUNNING")) is Novelty.NEWS


def test_an_aws_event_is_parsed_with_its_detail_as_the_record() -> None:
    detail = record("RUNNING", jobName="dag-task", jobQueue="arn:aws:batch:us-east-1:1:job-queue/q")
    parsed = parse_event(aws_message(detail))
    assert parsed == StatusEvent("job-1", "RUNNING", detail)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps(["a list"]),
        aws_message(record("RUNNING"), source="aws.ecs"),
        aws_message(record("RUNNING"), **{"detail-type": "ECS Task State Change"}),
        aws_message(record("ON_FIRE")),
        aws_message({"status": "RUNNING"}),
        aws_message(record("RUNNING"), detail="text"),
    ],
    ids=["not-json", "not-object", "other-source", "other-type", "unknown-status", "no-job-id", "bad-detail"],
)
def test_anything_but_a_batch_job_state_change_is_not_an_event(body: str) -> None:
    assert parse_event(body) is None


@pytest.mark.parametrize(
    "detail",
    [
        {"jobId": "j", "status": ["RUNNING"]},
        {"jobId": "j", "status": {"RUNNING": 1}},
        {"jobId": "j", "status": None},
        {"jobId": 7, "status": "RUNNING"},
        {"status": "RUNNING"},
    ],
)
def test_an_event_of_unexpected_shape_is_not_an_event_and_raises_nothing(detail) -> None:
    body = json.dumps({"source": "aws.batch", "detail-type": "Batch Job State Change", "detail": detail})
    assert parse_event(body) is None


def test_a_queue_blocked_event_is_parsed_as_a_blocked_runnable_record() -> None:
    detail = {**record("RUNNABLE"), "statusReason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"}
    parsed = parse_event(aws_message(detail, **{"detail-type": "Batch Job Queue Blocked"}))
    assert parsed == StatusEvent("job-1", "RUNNABLE", detail, blocked=True)
    assert parse_event(aws_message(detail)) == StatusEvent("job-1", "RUNNABLE", detail, blocked=False)


def test_a_blocked_event_for_a_job_known_runnable_is_a_duplicate_and_for_a_started_one_stale() -> None:
    blocked = StatusEvent("job-1", "RUNNABLE", record("RUNNABLE"), blocked=True)
    assert novelty(progress_of(record("RUNNABLE")), "RUNNABLE", blocked) is Novelty.DUPLICATE
    assert novelty(progress_of(record("PENDING")), "PENDING", blocked) is Novelty.NEWS
    assert novelty(progress_of(record("RUNNING", 1)), "RUNNING", blocked) is Novelty.STALE
