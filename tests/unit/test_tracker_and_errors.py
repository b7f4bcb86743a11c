from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from airflow_batch_executor.aws_errors import ApiErrorKind, classify_api_error, describe_api_error
from airflow_batch_executor.rate_limit import RateLimiter
from airflow_batch_executor.tracker import JobTracker, TrackedJob


def job(job_id: str, key) -> TrackedJob:
    return TrackedJob(job_id=job_id, key=key, job_name="n", job_queue="q", attempt=1, submitted_at=0.0)


def test_tracker_indexes_both_ways_and_forgets():
    tracker = JobTracker()
    tracker.add(job("a", "k1"))
    tracker.add(job("b", "k2"))
    assert tracker.for_key("k1").job_id == "a"
    assert tracker.get("b").key == "k2"
    assert sorted(tracker.job_ids()) == ["a", "b"]
    assert tracker.pop("a").key == "k1"
    assert tracker.for_key("k1") is None and len(tracker) == 1
    assert tracker.pop("missing") is None


def test_resubmitted_job_replaces_the_old_one_for_its_key():
    tracker = JobTracker()
    tracker.add(job("old", "k"))
    tracker.add(job("new", "k"))
    assert tracker.job_ids() == ["new"]
    assert tracker.for_key("k").job_id == "new"


def err(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


@pytest.mark.parametrize(
    "error, kind",
    [
        (err("TooManyRequestsException", 429), ApiErrorKind.THROTTLED),
        (err("ThrottlingException", 400), ApiErrorKind.THROTTLED),
        (err("ExpiredTokenException", 400), ApiErrorKind.CREDENTIALS),
        (err("UnrecognizedClientException", 403), ApiErrorKind.CREDENTIALS),
        (NoCredentialsError(), ApiErrorKind.CREDENTIALS),
        (err("ServerException", 500), ApiErrorKind.SERVER),
        (err("Whatever", 503), ApiErrorKind.SERVER),
        (ReadTimeoutError(endpoint_url="u"), ApiErrorKind.AMBIGUOUS),
        (ConnectTimeoutError(endpoint_url="u"), ApiErrorKind.NETWORK),
        (EndpointConnectionError(endpoint_url="u"), ApiErrorKind.NETWORK),
        (err("ClientException", 400), ApiErrorKind.REJECTED),
        (ValueError("bug"), ApiErrorKind.REJECTED),
    ],
)
def test_api_error_classes(error, kind):
    assert classify_api_error(error) is kind
    assert kind.retryable is (kind is not ApiErrorKind.REJECTED)
    assert describe_api_error(error)


def test_rate_limiter_halves_on_throttle_and_recovers(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("airflow_batch_executor.rate_limit.time.monotonic", lambda: clock[0])
    limiter = RateLimiter(40)
    limiter.throttled()
    assert limiter.rate == 20
    limiter.throttled()
    assert limiter.rate == 10
    clock[0] += 100
    limiter.throttled()
    assert limiter.rate == 20


def test_rate_limiter_hands_out_tokens_at_the_rate(monkeypatch):
    import threading

    clock = [0.0]
    monkeypatch.setattr("airflow_batch_executor.rate_limit.time.monotonic", lambda: clock[0])
    limiter = RateLimiter(10, burst=2)
    stop = threading.Event()
    assert limiter.acquire(stop) and limiter.acquire(stop)
    stop.set()
    assert limiter.acquire(stop) is False
    stop.clear()
    clock[0] += 0.1
    assert limiter.acquire(stop)


def test_a_later_try_supersedes_the_job_of_an_earlier_try():
    from airflow.models.taskinstancekey import TaskInstanceKey

    try1 = TaskInstanceKey("d", "t", "r", try_number=1, map_index=-1)
    try2 = try1.with_try_number(2)
    other = TaskInstanceKey("d", "t", "r", try_number=1, map_index=0)
    tracker = JobTracker()
    tracker.add(job("j1", try1))
    assert tracker.supersede(try1) is None
    assert tracker.supersede(other) is None
    assert len(tracker) == 1
    assert tracker.supersede(try2).job_id == "j1"
    assert len(tracker) == 0 and tracker.for_key(try1) is None
    assert tracker.supersede(try2) is None
