"""The job lifecycle rules as a table: every resubmit / fail / terminate / wait / missing / pending case."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_batch_executor.aws.errors import ApiErrorKind
from airflow_batch_executor.records import Submission, SubmitResult, TrackedJob
from airflow_batch_executor.rules.lifecycle import Action, Limits, after_missing, after_record, after_submit
from airflow_batch_executor.status.tracker import observe, track_submitted

LIMITS = Limits(max_submit_job_attempts=3, max_pending_seconds=600)
SUBMITTED_AT = 1_000.0
PULL_TIMEOUT = "CannotPullContainerError: dial tcp 1.2.3.4:443: i/o timeout"
MISSING_IMAGE = "CannotPullContainerError: manifest for repo:tag not found: manifest unknown"
NO_CAPACITY = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - no instance type fits"


def submission(attempt: int) -> Submission:
    request = {"jobName": "dag-task-try1-abc", "jobQueue": "q", "jobDefinition": "d"}
    return Submission(key=("dag", "task"), request=request, attempt=attempt)


def job(
    attempt: int = 1, *, adopted: bool = False, started: bool = False, status: str = "RUNNABLE"
) -> TrackedJob:
    tracked = track_submitted(submission(attempt), "job-1", SUBMITTED_AT)
    if adopted:
        tracked.submission = None
    tracked.started, tracked.status = started, status
    return tracked


def record(
    status: str, *, reason: str | None = None, container_reason: str | None = None, **more: Any
) -> dict:
    found: dict[str, Any] = {"jobId": "job-1", "jobName": "dag-task-try1-abc", "status": status, **more}
    if reason:
        found["statusReason"] = reason
    if container_reason:
        found["container"] = {"reason": container_reason}
    return found


@pytest.mark.parametrize(
    ("result", "action", "reason_has"),
    [
        (SubmitResult(submission(1), job_id="job-1"), Action.TRACK, ""),
        (
            SubmitResult(submission(1), error_kind=ApiErrorKind.THROTTLED, error="429"),
            Action.RESUBMIT,
            "1 of 3",
        ),
        (SubmitResult(submission(2), error_kind=ApiErrorKind.SERVER, error="500"), Action.RESUBMIT, "2 of 3"),
        (
            SubmitResult(submission(1), error_kind=ApiErrorKind.AMBIGUOUS, error="timeout"),
            Action.RESUBMIT,
            "ambiguous",
        ),
        (
            SubmitResult(submission(1), error_kind=ApiErrorKind.CREDENTIALS, error="expired"),
            Action.RESUBMIT,
            "",
        ),
        (
            SubmitResult(submission(3), error_kind=ApiErrorKind.NETWORK, error="refused"),
            Action.FAIL,
            "after 3 attempt(s)",
        ),
        (
            SubmitResult(submission(1), error_kind=ApiErrorKind.REJECTED, error="bad queue"),
            Action.FAIL,
            "(attempt 1)",
        ),
    ],
)
def test_after_submit(result: SubmitResult, action: Action, reason_has: str) -> None:
    decision = after_submit(result, LIMITS)
    assert decision.action is action
    assert reason_has in decision.reason
    if action is Action.FAIL:
        assert decision.event == "batch job not submitted"


def test_a_single_allowed_attempt_is_not_retried() -> None:
    result = SubmitResult(submission(1), error_kind=ApiErrorKind.THROTTLED, error="429")
    assert after_submit(result, Limits(1, 0)).action is Action.FAIL


@pytest.mark.parametrize(
    ("tracked", "found", "now", "action", "event", "reason_has"),
    [
        (job(), record("SUCCEEDED"), SUBMITTED_AT, Action.SUCCEED, "", "SUCCEEDED"),
        (job(started=True), record("RUNNING"), SUBMITTED_AT + 10_000, Action.WAIT, "", "RUNNING"),
        (job(), record("RUNNABLE"), SUBMITTED_AT + 599.9, Action.WAIT, "", "RUNNABLE"),
        (
            job(),
            record("RUNNABLE"),
            SUBMITTED_AT + 600,
            Action.TERMINATE,
            "batch job did not start in time",
            "600s",
        ),
        (
            job(status="STARTING"),
            record("STARTING"),
            SUBMITTED_AT + 601,
            Action.TERMINATE,
            "batch job did not start in time",
            "last status STARTING",
        ),
        (
            job(),
            record("RUNNABLE", reason=NO_CAPACITY),
            SUBMITTED_AT,
            Action.TERMINATE,
            "batch job cannot start",
            "never start",
        ),
        (
            job(started=True),
            record("FAILED", container_reason="OutOfMemoryError: killed", startedAt=5),
            SUBMITTED_AT,
            Action.FAIL,
            "batch job failed",
            "after the container started",
        ),
        (
            job(),
            record("FAILED", reason="Task failed to start", container_reason=MISSING_IMAGE),
            SUBMITTED_AT,
            Action.FAIL,
            "batch job failed",
            "would not help",
        ),
        (
            job(1),
            record("FAILED", reason="Task failed to start", container_reason=PULL_TIMEOUT),
            SUBMITTED_AT,
            Action.RESUBMIT,
            "batch job resubmitted",
            "Resubmitting (attempt 2 of 3)",
        ),
        (
            job(2),
            record("FAILED", reason="Task failed to start", container_reason=PULL_TIMEOUT),
            SUBMITTED_AT,
            Action.RESUBMIT,
            "batch job resubmitted",
            "Resubmitting (attempt 3 of 3)",
        ),
        (
            job(3),
            record("FAILED", reason="Task failed to start", container_reason=PULL_TIMEOUT),
            SUBMITTED_AT,
            Action.FAIL,
            "batch job failed",
            "Not resubmitted: the job was submitted 3 time(s)",
        ),
        (
            job(1, adopted=True),
            record("FAILED", container_reason=PULL_TIMEOUT),
            SUBMITTED_AT,
            Action.FAIL,
            "batch job failed",
            "Not resubmitted: this job was adopted",
        ),
        (job(), record("PAUSED"), SUBMITTED_AT, Action.WAIT, "", "does not know"),
    ],
)
def test_after_record(tracked, found, now, action, event, reason_has) -> None:
    observe(tracked, found)
    decision = after_record(tracked, found, LIMITS, now)
    assert (decision.action, decision.event) == (action, event)
    assert reason_has in decision.reason


def test_the_last_reason_never_says_it_resubmits() -> None:
    tracked = job(3)
    found = record("FAILED", reason="Task failed to start", container_reason=PULL_TIMEOUT)
    decision = after_record(tracked, found, LIMITS, SUBMITTED_AT)
    assert "Resubmitting" not in decision.reason and "max_submit_job_attempts = 3" in decision.reason
    assert "i/o timeout" in decision.reason


def test_no_pending_limit_when_max_pending_seconds_is_zero() -> None:
    decision = after_record(job(), record("RUNNABLE"), Limits(3, 0), SUBMITTED_AT + 10**9)
    assert decision.action is Action.WAIT


def test_a_started_job_is_never_resubmitted_even_with_attempts_left() -> None:
    tracked = job(1)
    found = record("FAILED", container_reason=PULL_TIMEOUT, startedAt=5)
    observe(tracked, found)
    assert tracked.started and tracked.submission is None
    assert after_record(tracked, found, LIMITS, SUBMITTED_AT).action is Action.FAIL


@pytest.mark.parametrize(
    ("checks", "action"), [(1, Action.WAIT), (4, Action.WAIT), (5, Action.FAIL), (6, Action.FAIL)]
)
def test_after_missing(checks: int, action: Action) -> None:
    tracked = job()
    tracked.missing_checks = checks
    decision = after_missing(tracked, LIMITS)
    assert decision.action is action
    assert (decision.event == "batch job lost") is (action is Action.FAIL)


def retried_after_start() -> dict:
    """A job Batch retried after its first attempt ran: RUNNABLE again, no top-level startedAt."""
    return record(
        "RUNNABLE",
        attempts=[
            {"container": {"exitCode": 1}, "startedAt": 2_000, "stoppedAt": 3_000, "statusReason": "x"}
        ],
    )


def test_a_job_whose_first_attempt_started_counts_as_started_though_it_waits_again() -> None:
    tracked = job()
    observe(tracked, retried_after_start())
    assert tracked.started and tracked.submission is None, "never resubmitted, no token refresh"


def test_the_pending_limit_never_terminates_a_job_whose_first_attempt_ran() -> None:
    tracked = job()
    found = retried_after_start()
    observe(tracked, found)
    assert after_record(tracked, found, LIMITS, SUBMITTED_AT + 10_000).action is Action.WAIT


def lost(attempt: int, kind: ApiErrorKind, look_ups: int = 0) -> SubmitResult:
    lost_once = submission(attempt)
    lost_once.maybe_submitted, lost_once.look_ups = True, look_ups
    return SubmitResult(lost_once, error_kind=kind, error="Read timeout on endpoint URL")


@pytest.mark.parametrize("kind", [ApiErrorKind.AMBIGUOUS, ApiErrorKind.SERVER, ApiErrorKind.REJECTED])
def test_after_a_lost_answer_the_try_fails_only_once_the_job_is_looked_for(kind) -> None:
    """Failing at once left a job the lost answer made free to run beside the next try."""
    assert after_submit(lost(3, kind), LIMITS).action is Action.LOOK_UP
    assert after_submit(lost(3, kind, look_ups=3), LIMITS).action is Action.LOOK_UP
    failed = after_submit(lost(3, kind, look_ups=4), LIMITS)
    assert failed.action is Action.FAIL and "no job of this try was found in 4 look-ups" in failed.reason


def test_a_lost_answer_with_attempts_left_submits_again_after_looking() -> None:
    assert after_submit(lost(1, ApiErrorKind.AMBIGUOUS), LIMITS).action is Action.RESUBMIT
