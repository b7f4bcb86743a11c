"""The submit threads, with a stub gateway: ordering, retries classification, no double submit."""

from __future__ import annotations

import threading
import time

from botocore.exceptions import ReadTimeoutError

from airflow_batch_executor.aws.errors import ApiErrorKind
from airflow_batch_executor.records import Submission
from airflow_batch_executor.submit.submitter import Submitter, backoff_delay

from .helpers import client_error, dispatch


class SubmitJobGateway:
    """SubmitJob and the look-up by name only, with failures to raise in turn; records the names sent."""

    def __init__(self, failures=()):
        self.failures = list(failures)
        self.submitted: list[str] = []
        self.jobs_by_name: dict[str, list[dict]] = {}
        self.lock = threading.Lock()

    def submit_job(self, request):
        with self.lock:
            if self.failures:
                raise self.failures.pop(0)
            self.submitted.append(request["jobName"])
            job = {"jobId": f"id-{len(self.submitted)}", "jobName": request["jobName"], "status": "SUBMITTED"}
            self.jobs_by_name.setdefault(request["jobName"], []).append(job)
            return job["jobId"]

    def find_jobs_by_name(self, queue, name):
        return list(self.jobs_by_name.get(name, []))


def submission(n: int) -> Submission:
    return Submission(key=("k", n), request={"jobName": f"job-{n}", "jobQueue": "q", "jobDefinition": "d"})


def collect(submitter: Submitter, count: int, timeout: float = 10.0):
    results, deadline = [], time.monotonic() + timeout
    while len(results) < count and time.monotonic() < deadline:
        results += submitter.results()
        time.sleep(0.01)
    return results


def test_every_submission_is_sent_once():
    gateway = SubmitJobGateway()
    submitter = Submitter(dispatch(gateway), rate=1000, concurrency=4)
    submitter.start()
    for n in range(50):
        submitter.put(submission(n))
    results = collect(submitter, 50)
    submitter.stop()
    assert sorted(gateway.submitted) == sorted(f"job-{n}" for n in range(50))
    assert len(results) == 50 and all(r.job_id for r in results)


def test_throttling_is_reported_and_slows_the_limiter():
    gateway = SubmitJobGateway(failures=[client_error("TooManyRequestsException", 429)])
    submitter = Submitter(dispatch(gateway), rate=100, concurrency=1)
    submitter.start()
    submitter.put(submission(1))
    [result] = collect(submitter, 1)
    submitter.stop()
    assert result.error_kind is ApiErrorKind.THROTTLED
    assert "TooManyRequestsException" in result.error
    assert submitter.limiter.rate < 100


def test_ambiguous_failure_then_retry_finds_the_job_instead_of_submitting_twice():
    gateway = SubmitJobGateway()
    submitter = Submitter(dispatch(gateway), rate=1000, concurrency=1)
    submitter.start()
    first = submission(1)
    gateway.submit_job(first.request)
    gateway.failures.append(ReadTimeoutError(endpoint_url="http://batch"))
    submitter.put(Submission(key=first.key, request=first.request))
    [failed] = collect(submitter, 1)
    assert failed.error_kind is ApiErrorKind.AMBIGUOUS and failed.submission.maybe_submitted
    submitter.put(failed.submission)
    [retried] = collect(submitter, 1)
    submitter.stop()
    assert retried.found_existing and retried.job_id == "id-1"
    assert gateway.submitted == ["job-1"]
    assert retried.submission.attempt == 2


def test_delayed_submissions_wait_and_cancel_drops_them():
    gateway = SubmitJobGateway()
    submitter = Submitter(dispatch(gateway), rate=1000, concurrency=2)
    submitter.start()
    submitter.submit(submission(1), delay=30)
    submitter.submit(submission(2))
    results = collect(submitter, 1)
    assert [r.submission.key for r in results] == [("k", 2)]
    assert len(submitter) == 2
    forgotten, in_flight = submitter.forget(("k", 1))
    assert forgotten.key == ("k", 1) and not in_flight, "it was waiting, never sent"
    assert len(submitter) == 1
    assert submitter.is_live(results[0].submission)
    submitter.stop()
    assert gateway.submitted == ["job-2"]


def test_stop_while_submissions_are_waiting_sends_nothing_more():
    gateway = SubmitJobGateway()
    # One token in the bucket and the next one far away: however long this thread stalls, one job at
    # most is sent before the stop.
    submitter = Submitter(dispatch(gateway), rate=0.001, concurrency=1)
    submitter.start()
    for n in range(20):
        submitter.put(submission(n))
    time.sleep(0.05)
    waiting = submitter.drop_waiting()
    submitter.stop(timeout=5)
    assert len(gateway.submitted) + len(waiting) <= 20
    assert len(waiting) >= 18
    assert not {s.job_name for s in waiting} & set(gateway.submitted)


def test_backoff_grows_and_is_capped():
    delays = [max(backoff_delay(attempt) for _ in range(200)) for attempt in range(1, 12)]
    for attempt, delay in enumerate(delays, start=1):
        assert 0 <= delay <= min(60, 2 ** (attempt - 1))
    assert delays[0] < delays[4] and delays[-1] > 30


def test_a_failed_namesake_does_not_count_as_the_lost_submission():
    gateway = SubmitJobGateway()
    first = submission(1)
    gateway.jobs_by_name["job-1"] = [{"jobId": "old", "jobName": "job-1", "status": "FAILED"}]
    submitter = Submitter(dispatch(gateway), rate=1000, concurrency=1)
    submitter.start()
    submitter.put(Submission(key=first.key, request=first.request, maybe_submitted=True))
    [result] = collect(submitter, 1)
    submitter.stop()
    assert not result.found_existing and result.job_id == "id-1"
    assert gateway.submitted == ["job-1"]
