"""Tasks revoked by a real scheduler for staying queued past ``task_queued_timeout`` (issue 15, item 1).

Airflow 3 revokes a task instance that stays QUEUED longer than ``[scheduler] task_queued_timeout``
(``executor.revoke_task``) and then, as long as that try has been revoked fewer than
``num_stuck_in_queued_retries`` times (default 2, kept here), sets it back to SCHEDULED with the
*same* try number, so it is queued again; after that it fails the task. A revoked attempt must
therefore never run, or the try would run twice.

Why not the executor's own queue (``queued_tasks``) with ``parallelism`` 1 and a task holding the
slot: the scheduler counts the executor's queued and running workloads against
``[core] parallelism`` before it queues anything (``_critical_section_enqueue_task_instances``), so
with the slot held the other tasks stay SCHEDULED, are never QUEUED and never revoked; and whatever
it queues is handed to the executor in the same loop's heartbeat. A real scheduler cannot leave a
task in ``queued_tasks`` for ``task_queued_timeout``; tests/integration/test_revoke.py drives the
executor directly for that case. Here the tasks are revoked where a real scheduler can find them:

* ``holder`` runs (until the test, having seen the others revoked, releases it) and succeeds;
* ``runnable``'s first job stays RUNNABLE (no capacity): revoked while its job is tracked, the job
  is terminated before it starts, and the re-queued try gets a second job that runs;
* ``throttled``'s SubmitJob calls are all throttled: revoked while the executor waits to retry,
  no job ever exists for that attempt, and the re-queued try is submitted once the throttle lifts.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from batch_devtools.devstack import DevStack, Timing
from tests.e2e.harness import (
    DAGS_FOLDER,
    RELEASE_HELPER,
    FinishedRun,
    e2e_stack,
    finished_run,
    job_ids_by_name,
    release,
    wait_until_running,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
"""The module's fixture (a stack, three runs, two revokes and their aftermath) runs inside its first
test: more than the suite's 300 s per test when the machine is busy."""

QUEUED_TIMEOUT = 60
"""Every task of the stack must reach running within it, not only the ones meant to be revoked: at 30 s,
a loaded CI machine took 29 s to start a job's Task SDK and the scheduler revoked a task that was
about to run (its try then had two jobs)."""
HOLDER, TRACKED, UNSUBMITTED = "e2e_revoke_holder", "e2e_revoke_tracked", "e2e_revoke_unsubmitted"
RESCHEDULED = "stuck in queued reschedule"
GAVE_UP = "stuck in queued tries exceeded"
REVOKE_REASON_MENTIONS = "task_queued_timeout"
TIMING = Timing(
    extra={
        # Also the lifetime of each workload's token, so it must cover a re-queued try's wait.
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": str(QUEUED_TIMEOUT),
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "2",
        # A throttled SubmitJob is retried until the scheduler revokes the task, never given up on.
        "AIRFLOW__AWS_BATCH_EXECUTOR__MAX_SUBMIT_JOB_ATTEMPTS": "100",
    }
)
RETRY_LINE = re.compile(r"^(\S+Z) .*dag_id='(\w+)'.*SubmitJob failed .*; retrying in ([\d.]+)s")
REQUEUE_LINE = re.compile(rf"Task stuck in queued; will try to requeue.*{UNSUBMITTED}\.throttled")
T = TypeVar("T")


def poll(what: str, condition: Callable[[], T], timeout: float, stack: DevStack) -> T:
    deadline = time.monotonic() + timeout
    while True:
        if result := condition():
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{stack.log_tails()}")
        if not stack.live_schedulers():
            raise AssertionError(f"the scheduler died while waiting for {what}\n{stack.log_tails()}")
        time.sleep(0.25)


@dataclass(frozen=True)
class Scenario:
    stack: DevStack
    holder: FinishedRun
    tracked: FinishedRun
    unsubmitted: FinishedRun
    holder_state_when_revoked: str | None
    throttled_submit_calls: int
    retries_before_revoke: int
    """SubmitJob retries the executor had scheduled for ``throttled`` when it was revoked."""

    def events(self, run: FinishedRun, task_id: str) -> list[tuple[int | None, str]]:
        return [
            (row.try_number, row.event) for row in self.stack.task_events(run.dag_id, run.run_id, task_id)
        ]

    def jobs_of(self, run: FinishedRun) -> dict[str, dict[str, Any]]:
        """DescribeJobs records of every Batch job submitted for the run, once all have ended."""
        ids = [
            job_id
            for name in {r["jobName"] for r in run.submissions}
            for job_id in job_ids_by_name(self.stack, name)
        ]
        return self.stack.wait_for_jobs(ids, timeout=60)


def _has_rescheduled(stack: DevStack, dag_id: str, run_id: str, task_id: str) -> bool:
    return any(row.event == RESCHEDULED for row in stack.task_events(dag_id, run_id, task_id))


def _first_log_time(stack: DevStack, pattern: re.Pattern[str]) -> datetime | None:
    for line in stack.component_log("scheduler-1").splitlines():
        if pattern.search(line):
            return datetime.fromisoformat(line.split(" ", 1)[0])
    return None


def _retries_scheduled_before(stack: DevStack, dag_id: str, before: datetime) -> list[datetime]:
    """When each SubmitJob retry the executor scheduled for ``dag_id`` before ``before`` is due."""
    due = []
    for line in stack.component_log("scheduler-1").splitlines():
        if (match := RETRY_LINE.match(line)) and match.group(2) == dag_id:
            logged = datetime.fromisoformat(match.group(1))
            if logged < before:
                due.append(logged + timedelta(seconds=float(match.group(3))))
    return due


@pytest.fixture(scope="module")
def scenario() -> Iterator[Scenario]:
    with e2e_stack(DAGS_FOLDER, dag_files=["revoked_tasks.py", RELEASE_HELPER], timing=TIMING) as stack:
        holder_run = stack.trigger(HOLDER)
        wait_until_running(stack, HOLDER, holder_run, [("holder", -1)])

        # Its first job stays RUNNABLE until terminated; the re-queued try's job (same name) runs.
        stack.batch.add_fault("stuck_in_runnable", pattern=f"{TRACKED}-runnable-try1-*", count=1)
        tracked_run = stack.trigger(TRACKED)
        poll(
            "the runnable task's first job",
            lambda: [j for j in stack.batch.jobs() if j["jobName"].startswith(f"{TRACKED}-runnable-try1-")],
            60,
            stack,
        )
        # From now on every SubmitJob call is throttled; the holder's and runnable's jobs exist already.
        calls_before = stack.batch.calls().get("submitjob", 0)
        stack.batch.add_fault("throttle", count=None, operation="SubmitJob")
        unsubmitted_run = stack.trigger(UNSUBMITTED)

        poll(
            "the scheduler to revoke and reschedule both waiting tasks",
            lambda: (
                _has_rescheduled(stack, TRACKED, tracked_run, "runnable")
                and _has_rescheduled(stack, UNSUBMITTED, unsubmitted_run, "throttled")
            ),
            QUEUED_TIMEOUT + 60,
            stack,
        )
        holder_state = stack.task_states(HOLDER, holder_run).get(("holder", -1))
        # Read while it still runs (it waits for this release): the revokes left it alone.
        release(stack, HOLDER)
        throttled_calls = stack.batch.calls().get("submitjob", 0) - calls_before
        stack.batch.clear_faults()

        # A retry of the revoked attempt, scheduled before the revoke, must never be sent: wait
        # until every such retry is overdue before counting submissions.
        revoked_at = poll(
            "the scheduler's log line for the throttled task's revoke",
            lambda: _first_log_time(stack, REQUEUE_LINE),
            30,
            stack,
        )
        retries = _retries_scheduled_before(stack, UNSUBMITTED, revoked_at)
        last_due = max(retries, default=revoked_at)
        poll(
            "every SubmitJob retry scheduled for the revoked attempt to be overdue",
            lambda: datetime.now(UTC) > last_due + timedelta(seconds=2),
            90,
            stack,
        )
        print(
            f"throttled task revoked after {len(retries)} SubmitJob retries; waited "
            f"{(last_due - revoked_at).total_seconds():.1f}s after the revoke for the last one to fall due"
        )
        runs = {
            dag_id: finished_run(stack, dag_id, run_id)
            for dag_id, run_id in (
                (HOLDER, holder_run),
                (TRACKED, tracked_run),
                (UNSUBMITTED, unsubmitted_run),
            )
        }
        yield Scenario(
            stack=stack,
            holder=runs[HOLDER],
            tracked=runs[TRACKED],
            unsubmitted=runs[UNSUBMITTED],
            holder_state_when_revoked=holder_state,
            throttled_submit_calls=throttled_calls,
            retries_before_revoke=len(retries),
        )


def _assert_revoked_before_running_then_ran_once(events: list[tuple[int | None, str]]) -> None:
    """Airflow's event log: try 1 was rescheduled before it ever started, then started exactly once."""
    names = [event for _, event in events]
    assert (1, RESCHEDULED) in events and GAVE_UP not in names, events
    assert "running" not in names[: events.index((1, RESCHEDULED))], f"the revoked attempt ran: {events}"
    assert [try_number for try_number, event in events if event == "running"] == [1], events


def test_the_running_holder_is_left_alone_and_succeeds(scenario: Scenario) -> None:
    run = scenario.holder
    ti = run.task_instances[("holder", -1)]
    assert scenario.holder_state_when_revoked == "running", "the holder ran while the others were revoked"
    assert (run.state, ti.state, ti.try_number) == ("success", "success", 1)
    assert run.submissions_per_try() == {("holder", -1, 1): 1}
    [job] = scenario.jobs_of(run).values()
    assert job["status"] == "SUCCEEDED" and job["jobId"] == ti.external_executor_id
    assert {event for _, event in scenario.events(run, "holder")} & {RESCHEDULED, GAVE_UP} == set()


def test_revoked_while_runnable_its_job_never_starts_and_the_try_runs_once(scenario: Scenario) -> None:
    run = scenario.tracked
    ti = run.task_instances[("runnable", -1)]
    assert (run.state, ti.state, ti.try_number) == ("success", "success", 1), "re-queued as the same try"
    _assert_revoked_before_running_then_ran_once(scenario.events(run, "runnable"))

    assert run.submissions_per_try() == {("runnable", -1, 1): 2}, (
        "the revoked attempt's job and the re-queued one"
    )
    first, second = (request["jobName"] for request in run.submissions)
    assert first == second, "both jobs carry the try's deterministic name"
    jobs = scenario.jobs_of(run)
    revoked = [job for job in jobs.values() if job["jobId"] != ti.external_executor_id]
    assert len(jobs) == 2 and len(revoked) == 1, jobs
    assert revoked[0]["status"] == "FAILED" and REVOKE_REASON_MENTIONS in revoked[0]["statusReason"], revoked
    assert "startedAt" not in revoked[0], "the revoked attempt's job never started"
    assert jobs[ti.external_executor_id]["status"] == "SUCCEEDED"
    assert f"terminating Batch job {revoked[0]['jobId']}" in scenario.stack.component_log("scheduler-1")


def test_revoked_before_submission_no_job_ever_exists_for_that_attempt(scenario: Scenario) -> None:
    run = scenario.unsubmitted
    ti = run.task_instances[("throttled", -1)]
    assert scenario.throttled_submit_calls >= 2, "SubmitJob was throttled and retried before the revoke"
    assert scenario.retries_before_revoke >= 1, "the executor was waiting to retry when it was revoked"
    assert (run.state, ti.state, ti.try_number) == ("success", "success", 1), "re-queued as the same try"
    _assert_revoked_before_running_then_ran_once(scenario.events(run, "throttled"))

    # Throttled calls never reach Batch; a pending retry of the revoked attempt, sent once the
    # throttle lifted, would be a second accepted SubmitJob (and job) for try 1.
    assert run.submissions_per_try() == {("throttled", -1, 1): 1}
    [job] = scenario.jobs_of(run).values()
    assert job["status"] == "SUCCEEDED" and job["jobId"] == ti.external_executor_id


def test_no_try_of_any_task_started_more_than_one_batch_job(scenario: Scenario) -> None:
    started: Counter[tuple[str, str, int, int]] = Counter()
    for run in (scenario.holder, scenario.tracked, scenario.unsubmitted):
        tags_by_name = {request["jobName"]: request["tags"] for request in run.submissions}
        for job in scenario.jobs_of(run).values():
            tags = tags_by_name[job["jobName"]]
            if "startedAt" in job:
                started[
                    (
                        tags["airflow.dag_id"],
                        tags["airflow.task_id"],
                        int(tags["airflow.map_index"]),
                        int(tags["airflow.try_number"]),
                    )
                ] += 1
    assert started == {
        (HOLDER, "holder", -1, 1): 1,
        (TRACKED, "runnable", -1, 1): 1,
        (UNSUBMITTED, "throttled", -1, 1): 1,
    }
