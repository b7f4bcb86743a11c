"""Failure handling through a real scheduler: local-Batch faults switched on by job name.

One stack runs every scenario at once. Its scheduler revokes tasks queued for more than
``QUEUED_TIMEOUT`` seconds and fails them at the first revocation (no requeue), so the
stuck-in-RUNNABLE scenario ends in about a minute.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from batch_devtools.devstack import Timing
from batch_devtools.local_batch.faults import CAPACITY_REASON, MISCONFIGURATION_REASON
from tests.e2e.harness import (
    DAGS_FOLDER,
    FinishedRun,
    Runs,
    e2e_stack,
    job_id_of,
    job_ids_by_name,
)

pytestmark = pytest.mark.e2e

QUEUED_TIMEOUT = 60
"""Every task of the stack must reach running within it, not only the ones meant to be revoked: at 30 s,
a loaded CI machine took 29 s to start a job's Task SDK and the scheduler revoked a task that was
about to run (its try then had two jobs)."""
SUBMISSION_MARGIN_SECONDS = 5
"""Between a task instance being queued and its job being created (the queued timeout's clock starts at
the first), on a busy machine."""
REVOKE_REASON_MENTIONS = "task_queued_timeout"
DAG_IDS = (
    "e2e_fail_transient",
    "e2e_fail_permanent",
    "e2e_fail_host",
    "e2e_fail_stuck",
    "e2e_fail_misconfigured",
)
TIMING = Timing(
    extra={
        # Also the lifetime of each workload's token, so it must cover a resubmission's delay.
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": str(QUEUED_TIMEOUT),
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "2",
        # Fail a task stuck in queued at its first revocation instead of requeueing it twice.
        "AIRFLOW__SCHEDULER__NUM_STUCK_IN_QUEUED_RETRIES": "0",
    }
)


@pytest.fixture(scope="module")
def runs() -> Iterator[Runs]:
    with e2e_stack(DAGS_FOLDER, dag_files=["failures.py"], timing=TIMING) as stack:
        faults = stack.batch
        faults.add_fault("fail_before_start", pattern="e2e_fail_transient-pulls_late-try1-*", count=1)
        faults.add_fault(
            "fail_before_start", pattern="e2e_fail_permanent-missing_image-try1-*", count=1, permanent=True
        )
        faults.add_fault(
            "host_terminated", pattern="e2e_fail_host-long_runner-try1-*", count=1, after_seconds=1
        )
        faults.add_fault(
            "stuck_in_runnable", pattern="e2e_fail_stuck-starved-*", count=None, reason=CAPACITY_REASON
        )
        faults.add_fault(
            "stuck_in_runnable",
            pattern="e2e_fail_misconfigured-too_big-*",
            count=None,
            reason=MISCONFIGURATION_REASON,
        )
        yield Runs(stack, DAG_IDS)


def _events(runs: Runs, run: FinishedRun, task_id: str, event: str) -> list[str]:
    """``extra`` of the task's event-log rows named ``event``."""
    return [
        row.extra or ""
        for row in runs.stack.task_events(run.dag_id, run.run_id, task_id)
        if row.event == event
    ]


def test_transient_never_start_is_resubmitted_within_the_try(runs: Runs) -> None:
    run = runs.finish("e2e_fail_transient")

    ti = run.task_instances[("pulls_late", -1)]
    assert (run.state, ti.state, ti.try_number) == ("success", "success", 1)
    assert run.submissions_per_try() == {("pulls_late", -1, 1): 2}, "resubmitted once, within try 1"
    first, second = (request["jobName"] for request in run.submissions)
    assert first == second, "a resubmission keeps the try's deterministic job name"
    jobs = runs.stack.wait_for_jobs(job_ids_by_name(runs.stack, first), timeout=30)
    assert sorted(job["status"] for job in jobs.values()) == ["FAILED", "SUCCEEDED"]
    succeeded = next(job_id for job_id, job in jobs.items() if job["status"] == "SUCCEEDED")
    never_started = next(job for job in jobs.values() if job["status"] == "FAILED")
    pull_error = (never_started.get("container") or {}).get("reason", "")
    assert "CannotPullContainerError" in pull_error, never_started
    assert ti.external_executor_id == succeeded


def test_permanent_never_start_fails_the_try_at_once(runs: Runs) -> None:
    run = runs.finish("e2e_fail_permanent")

    ti = run.task_instances[("missing_image", -1)]
    assert (run.state, ti.state, ti.try_number) == ("failed", "failed", 1)
    assert run.submissions_per_try() == {("missing_image", -1, 1): 1}, "a permanent reason is not retried"
    job = runs.stack.describe_jobs([ti.external_executor_id or ""])[ti.external_executor_id or ""]
    assert job["status"] == "FAILED" and "not found" in (job.get("container") or {}).get("reason", ""), job


def test_host_terminated_mid_run_fails_the_try_and_airflow_retries(runs: Runs) -> None:
    run = runs.finish("e2e_fail_host")

    ti = run.task_instances[("long_runner", -1)]
    assert (run.state, ti.state, ti.try_number) == ("success", "success", 2)
    assert run.submissions_per_try() == {("long_runner", -1, 1): 1, ("long_runner", -1, 2): 1}
    first = job_id_of(runs.stack, run.submission("long_runner", 1)["jobName"])
    second = job_id_of(runs.stack, run.submission("long_runner", 2)["jobName"])
    jobs = runs.stack.wait_for_jobs([first, second], timeout=30)
    assert jobs[first]["status"] == "FAILED" and "terminated" in jobs[first]["statusReason"]
    assert jobs[second]["status"] == "SUCCEEDED"
    assert ti.external_executor_id == second, "the task instance points at its last try's job"


def test_job_stuck_in_runnable_is_revoked_by_the_scheduler(runs: Runs) -> None:
    run = runs.finish("e2e_fail_stuck")

    ti = run.task_instances[("starved", -1)]
    assert (run.state, ti.state, ti.try_number) == ("failed", "failed", 1)
    assert run.submissions_per_try() == {("starved", -1, 1): 1}
    job_id = job_id_of(runs.stack, run.submission("starved")["jobName"])
    job = runs.stack.wait_for_jobs([job_id], timeout=30)[job_id]
    assert job["status"] == "FAILED", "the revoked task's job was terminated"
    assert REVOKE_REASON_MENTIONS in job["statusReason"], job["statusReason"]
    assert "startedAt" not in job, "the job never ran"
    assert _events(runs, run, "starved", "stuck in queued tries exceeded"), "the scheduler revoked it"
    # The timeout runs from the task instance's queued time, before the job was created: submission
    # under load takes seconds of it, hence the margin. Terminated sooner, something else stopped it.
    queued_for = (job["stoppedAt"] - job["createdAt"]) / 1000
    assert queued_for >= QUEUED_TIMEOUT - SUBMISSION_MARGIN_SECONDS, (
        f"terminated after {queued_for:.0f}s, before the queued timeout"
    )


def test_misconfigured_job_is_terminated_and_fails_at_once(runs: Runs) -> None:
    run = runs.finish("e2e_fail_misconfigured")

    ti = run.task_instances[("too_big", -1)]
    assert (run.state, ti.state, ti.try_number) == ("failed", "failed", 1)
    assert run.submissions_per_try() == {("too_big", -1, 1): 1}
    job_id = job_id_of(runs.stack, run.submission("too_big")["jobName"])
    job = runs.stack.wait_for_jobs([job_id], timeout=30)[job_id]
    assert job["status"] == "FAILED" and "MISCONFIGURATION:" in job["statusReason"], job.get("statusReason")
    waited = (job["stoppedAt"] - job["createdAt"]) / 1000
    assert waited < QUEUED_TIMEOUT, f"terminated after {waited:.0f}s: by the executor, not the queued timeout"
    assert _events(runs, run, "too_big", "stuck in queued tries exceeded") == []


def test_batch_reasons_reach_the_task_event_log(runs: Runs) -> None:
    """What the executor writes with ``log_task_event`` lands in the task's rows of table ``log``."""
    transient = runs.finish("e2e_fail_transient")
    permanent = runs.finish("e2e_fail_permanent")
    host = runs.finish("e2e_fail_host")
    misconfigured = runs.finish("e2e_fail_misconfigured")

    resubmitted = _events(runs, transient, "pulls_late", "batch job resubmitted")
    assert len(resubmitted) == 1 and "CannotPullContainerError" in resubmitted[0], resubmitted
    failed = _events(runs, permanent, "missing_image", "batch job failed")
    assert len(failed) == 1 and "not found" in failed[0], failed
    assert _events(runs, permanent, "missing_image", "batch job resubmitted") == []
    host_failed = _events(runs, host, "long_runner", "batch job failed")
    assert len(host_failed) == 1 and "Host EC2" in host_failed[0], host_failed
    assert _events(runs, host, "long_runner", "batch job resubmitted") == [], "never resubmitted once started"
    cannot_start = _events(runs, misconfigured, "too_big", "batch job cannot start")
    assert len(cannot_start) == 1, cannot_start
    assert "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT" in cannot_start[0], cannot_start
