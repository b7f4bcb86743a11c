"""The rules of a job's life, as pure functions: what the executor does next, and why.

Each function takes what is known (a submit result, or a tracked job and what Batch last said of it),
the limits from the options and the clock, and returns one :class:`Decision` with the reason an
operator will read. The executor only carries decisions out, so every rule here is unit-tested as a
table without AWS, threads or Airflow.

A RESUBMIT decision only ever follows :func:`~airflow_batch_executor.rules.outcome.classify`, which
holds the rule that never bends (a started job is never resubmitted).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_batch_executor.aws.errors import ApiErrorKind
from airflow_batch_executor.rules.outcome import Verdict, classify

if TYPE_CHECKING:
    from airflow_batch_executor.options import ExecutorOptions
    from airflow_batch_executor.records import SubmitResult, TrackedJob

MISSING_JOB_CHECKS = 5
LOOKUPS_AFTER_LOST_ANSWER = 4
"""Look-ups by name, with backoff, after the last SubmitJob attempt when an answer was lost: failing
the try at once could leave a job it does not know of to run the task beside the next try."""


class Action(enum.Enum):
    TRACK = "track"  # a submission produced a job: track it and tell the scheduler its id
    LOOK_UP = "look_up"  # no attempt left, but a lost answer may have made a job: look for it again
    WAIT = "wait"  # nothing to do yet
    SUCCEED = "succeed"  # report success
    FAIL = "fail"  # report failure; the job is over (or never existed)
    TERMINATE = "terminate"  # the job can never start, or waited too long: terminate it, then fail
    RESUBMIT = "resubmit"  # submit the same request again, after a backoff


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""  # for the operator: what happened, Batch's own words, and what to do
    event: str = ""  # name of the task's event-log row; empty when the decision is not worth one
    reason_class: str = ""  # short stable label for metrics


@dataclass(frozen=True)
class Limits:
    max_submit_job_attempts: int
    max_pending_seconds: float
    missing_job_checks: int = MISSING_JOB_CHECKS

    @classmethod
    def from_options(cls, options: ExecutorOptions) -> Limits:
        return cls(options.max_submit_job_attempts, options.max_pending_seconds)


WAIT = Decision(Action.WAIT)
_ATTEMPTS_OPTION = "[aws_batch_executor] max_submit_job_attempts"


def after_submit(result: SubmitResult, limits: Limits) -> Decision:
    """A SubmitJob attempt came back: track the job, try again later, or fail the task."""
    attempt = result.submission.attempt
    if result.job_id:
        return Decision(Action.TRACK)
    kind = result.error_kind
    may_submit_again = kind is not None and kind.retryable and attempt < limits.max_submit_job_attempts
    if result.submission.maybe_submitted and not may_submit_again:
        if result.submission.look_ups < LOOKUPS_AFTER_LOST_ANSWER:
            return Decision(
                Action.LOOK_UP,
                f"SubmitJob failed {attempt} time(s) and an answer was lost ({result.error}); looking for "
                "the job that request may have made before failing the task",
                reason_class="lost_answer",
            )
        reason = (
            f"AWS Batch SubmitJob failed, an answer was lost, and no job of this try was found in "
            f"{LOOKUPS_AFTER_LOST_ANSWER} look-ups since; last error: {result.error}. "
            "Any job a lost answer made is terminated when it shows up. Check the scheduler's network "
            "access to AWS Batch."
        )
        return Decision(Action.FAIL, reason, "batch job not submitted", "not_submitted")
    if may_submit_again:
        return Decision(
            Action.RESUBMIT,
            f"SubmitJob failed (attempt {attempt} of {limits.max_submit_job_attempts}, {kind.value}): "
            f"{result.error}",
            reason_class=kind.value,
        )
    if kind is ApiErrorKind.REJECTED:
        reason = f"AWS Batch job not submitted (attempt {attempt}): {result.error}"
    else:
        reason = (
            f"AWS Batch SubmitJob failed after {attempt} attempt(s); last error: {result.error}. "
            "Check the scheduler's network access to AWS Batch and its credentials."
        )
    return Decision(Action.FAIL, reason, "batch job not submitted", "not_submitted")


def after_record(job: TrackedJob, record: Mapping[str, Any], limits: Limits, now: float) -> Decision:
    """What Batch says of a tracked job decides its next step; ``job`` has already observed ``record``."""
    outcome = classify(record)
    verdict = outcome.verdict
    if verdict is Verdict.SUCCESS:
        return Decision(Action.SUCCEED, outcome.reason, reason_class=outcome.reason_class)
    if verdict is Verdict.FAIL:
        return Decision(Action.FAIL, outcome.reason, "batch job failed", outcome.reason_class)
    if verdict is Verdict.TERMINATE:
        return Decision(Action.TERMINATE, outcome.reason, "batch job cannot start", outcome.reason_class)
    if verdict is Verdict.RESUBMIT:
        return _resubmission(job, outcome.reason, outcome.reason_class, limits)
    return _pending_limit(job, limits, now) or Decision(
        Action.WAIT, outcome.reason, reason_class=outcome.reason_class
    )


def _resubmission(job: TrackedJob, reason: str, reason_class: str, limits: Limits) -> Decision:
    if job.submission is None:
        return Decision(
            Action.FAIL,
            f"{reason} Not resubmitted: this job was adopted from another scheduler, and only the "
            "scheduler that submitted a job keeps its request. This try is failed; Airflow's retries "
            "decide what happens next.",
            "batch job failed",
            reason_class,
        )
    if job.attempt >= limits.max_submit_job_attempts:
        return Decision(
            Action.FAIL,
            f"{reason} Not resubmitted: the job was submitted {job.attempt} time(s), the most "
            f"{_ATTEMPTS_OPTION} = {limits.max_submit_job_attempts} allows. This try is failed; Airflow's "
            "retries decide what happens next. If it keeps happening, fix the cause above, or raise "
            f"{_ATTEMPTS_OPTION} if it clears up by itself.",
            "batch job failed",
            reason_class,
        )
    return Decision(
        Action.RESUBMIT,
        f"{reason} Resubmitting (attempt {job.attempt + 1} of {limits.max_submit_job_attempts}).",
        "batch job resubmitted",
        reason_class,
    )


def _pending_limit(job: TrackedJob, limits: Limits, now: float) -> Decision | None:
    limit = limits.max_pending_seconds
    if not limit or job.started or now - job.submitted_at < limit:
        return None
    last = f"{job.status}: {job.status_reason}" if job.status_reason else job.status
    return Decision(
        Action.TERMINATE,
        f"Batch job {job.job_id} ({job.job_name}) did not start within {limit:g}s "
        f"([aws_batch_executor] max_pending_seconds); last status {last}",
        "batch job did not start in time",
        "pending_limit",
    )


def after_missing(job: TrackedJob, limits: Limits) -> Decision:
    """DescribeJobs did not return a tracked job (``job.missing_checks`` times in a row)."""
    if job.missing_checks < limits.missing_job_checks:
        return Decision(
            Action.WAIT,
            f"Batch job {job.job_id} for {job.key} is missing from DescribeJobs "
            f"({job.missing_checks} of {limits.missing_job_checks} checks)",
            reason_class="missing",
        )
    return Decision(
        Action.FAIL,
        f"Batch job {job.job_id} ({job.job_name}) was not returned by DescribeJobs in "
        f"{limits.missing_job_checks} consecutive checks; it no longer exists in AWS Batch, so its "
        "outcome is unknown and this try is failed. Airflow's retries decide what happens next.",
        "batch job lost",
        "missing",
    )
