"""The job supervisor over AWS Batch in memory: what the scheduler hears of each job, and when a job
is resubmitted, failed or terminated; one task's trouble never reaches another's, and ``sync`` (the
scheduler's heartbeat) never waits on AWS.

The supervisor's threads are real; only Batch is a stub. Each test waits on a condition, never on a
clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_batch_executor.records import TaskEvent, TaskState
from airflow_batch_executor.recovery.lookup import REVOKED_PREFIX
from airflow_batch_executor.requests.factory import RequestFactory
from airflow_batch_executor.requests.naming import WorkloadIdentity, job_name
from airflow_batch_executor.requests.task_specs import JobSpec
from airflow_batch_executor.submit import submitter
from airflow_batch_executor.supervisor import (
    GIVEN_UP_REASON,
    SHUTDOWN_REASON,
    JobSupervisor,
    submit_threads,
)

from .helpers import COMMAND, LOCATION, FakeBatch, options, wait_until

PULL_TIMEOUT = (
    "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref "
    "docker.io/library/airflow:3: dial tcp 34.205.13.154:443: i/o timeout"
)
SPOT_RECLAIMED = "Host EC2 (instance i-08784105ffff56b4f) terminated."


FACTORY = RequestFactory(options(), api_url="http://api/execution/", default_queue="default")


def spec(key: str) -> JobSpec:
    """The task ``key`` of dag ``dag``, try 1."""
    return JobSpec(WorkloadIdentity("dag", key, "run1", try_number=1), COMMAND, "default", None)


def name_of(key: str) -> str:
    return job_name(spec(key).identity)


@pytest.fixture
def batch() -> FakeBatch:
    return FakeBatch()


@pytest.fixture
def make_supervisor(batch: FakeBatch, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Started supervisors over ``batch`` that poll all the time and resubmit with hardly a backoff."""
    monkeypatch.setattr(submitter, "BACKOFF_BASE_SECONDS", 0.001)
    made: list[JobSupervisor] = []

    def make(**option_values: Any) -> JobSupervisor:
        opts = options(**{"status_poll_interval": 0.01, **option_values})
        factory = RequestFactory(opts, api_url="http://api/execution/", default_queue="default")
        supervisor = JobSupervisor(batch, factory, opts)  # type: ignore[arg-type]
        supervisor.start()
        made.append(supervisor)
        return supervisor

    yield make
    batch.release_all()
    for supervisor in made:
        supervisor.stop(terminate_jobs=False)


@pytest.fixture
def supervisor(make_supervisor: Callable[..., JobSupervisor]) -> JobSupervisor:
    return make_supervisor()


def submit(supervisor: JobSupervisor, key: str) -> None:
    supervisor.submit(key, FACTORY.build(spec(key)), spec(key))


def sync_until(
    supervisor: JobSupervisor, condition: Callable[[list[TaskEvent]], bool], what: str, timeout: float = 10.0
) -> list[TaskEvent]:
    """Heartbeat like the scheduler, collecting the events, until ``condition(events)``."""
    events: list[TaskEvent] = []
    deadline = time.monotonic() + timeout
    while not condition(events):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so after {timeout}s; events: {events}")
        events += supervisor.sync()
        time.sleep(0.005)
    return events


def has(key: str, state: TaskState | None) -> Callable[[list[TaskEvent]], bool]:
    return lambda events: any(event.key == key and event.state is state for event in events)


def running(supervisor: JobSupervisor, key: str) -> str:
    """Submit the task ``key`` and heartbeat until the scheduler hears it runs; its job id."""
    submit(supervisor, key)
    events = sync_until(supervisor, has(key, TaskState.RUNNING), f"{key} running")
    [event] = [event for event in events if event.key == key]
    return event.info


def of(events: list[TaskEvent], key: str) -> list[TaskEvent]:
    return [event for event in events if event.key == key]


def test_a_submitted_job_is_reported_running_with_its_job_id(supervisor, batch):
    submit(supervisor, "a")
    events = sync_until(supervisor, has("a", TaskState.RUNNING), "a running")
    [sent] = batch.requests
    [job_id] = batch.jobs
    assert of(events, "a") == [TaskEvent("a", TaskState.RUNNING, job_id)]
    assert sent["jobName"] == name_of("a")
    assert supervisor.tracker.for_key("a").job_id == job_id


def test_a_succeeded_job_is_reported_a_success_and_no_longer_tracked(supervisor, batch):
    job_id = running(supervisor, "a")
    batch.update(job_id, status="RUNNING", startedAt=1)
    batch.update(job_id, status="SUCCEEDED", stoppedAt=2, container={"exitCode": 0})
    events = sync_until(supervisor, has("a", TaskState.SUCCESS), "a succeeded")
    assert of(events, "a") == [
        TaskEvent("a", TaskState.RUNNING, job_id),
        TaskEvent("a", TaskState.SUCCESS, job_id),
    ]
    assert supervisor.tracker.for_key("a") is None and not supervisor.busy
    assert batch.terminated == []


def test_a_job_whose_container_started_is_reported_running_again_once(supervisor, batch):
    """The scheduler may drop the RUNNING event sent at submission (a locked row); the start repeats it."""
    job_id = running(supervisor, "a")
    batch.update(job_id, status="STARTING")
    sync_until(supervisor, lambda _: supervisor.tracker.for_key("a").status == "STARTING", "a starting")
    batch.update(job_id, status="RUNNING", startedAt=1)
    events = sync_until(supervisor, has("a", TaskState.RUNNING), "a started")
    batch.update(job_id, status="RUNNING", startedAt=1, statusReason="still running")
    events += sync_until(supervisor, lambda _: supervisor.tracker.for_key("a").status_reason, "a heard again")
    assert of(events, "a") == [TaskEvent("a", TaskState.RUNNING, job_id)]


def test_a_job_that_failed_to_start_for_a_transient_reason_is_resubmitted(supervisor, batch):
    first = running(supervisor, "a")
    batch.update(
        first, status="FAILED", statusReason="Task failed to start", container={"reason": PULL_TIMEOUT}
    )
    events = sync_until(
        supervisor,
        lambda events: any(e.state is TaskState.RUNNING and e.info != first for e in events),
        "a running again",
    )
    [resubmitted, again] = of(events, "a")
    assert resubmitted.state is None and resubmitted.log_event == "batch job resubmitted"
    assert PULL_TIMEOUT in resubmitted.info and "Resubmitting (attempt 2 of 3)" in resubmitted.info
    assert again.state is TaskState.RUNNING and again.info in batch.jobs and again.info != first
    assert [request["jobName"] for request in batch.requests] == [name_of("a")] * 2
    assert batch.terminated == []


@pytest.mark.parametrize("seen_running", [True, False], ids=["seen-running", "not-seen-running"])
def test_a_job_that_failed_after_its_container_started_fails_the_try_and_is_never_resubmitted(
    supervisor, batch, seen_running
):
    job_id = running(supervisor, "a")
    if seen_running:
        batch.update(job_id, status="RUNNING", startedAt=1)
        sync_until(supervisor, lambda _: supervisor.tracker.for_key("a").started, "a seen running")
    # Spot reclaimed the host: a transient reason, which before a start would be resubmitted.
    batch.update(job_id, status="FAILED", statusReason=SPOT_RECLAIMED, startedAt=1, stoppedAt=2)
    events = sync_until(supervisor, has("a", TaskState.FAILED), "a failed")
    *start, reclaimed, failed = of(events, "a")
    assert start == ([] if seen_running else [TaskEvent("a", TaskState.RUNNING, job_id)])
    assert reclaimed.state is None and reclaimed.log_event == "batch job reclaimed"
    assert reclaimed.info.startswith(
        f"Spot reclaimed instance i-08784105ffff56b4f running Batch job {job_id} "
    )
    assert "after the container started" in failed.info and SPOT_RECLAIMED in failed.info
    assert failed.log_event == "batch job failed"
    assert not supervisor.busy, "nothing is tracked, and nothing waits to be submitted"
    assert len(batch.requests) == 1


def test_a_job_missing_from_describe_jobs_check_after_check_fails_its_try(supervisor, batch):
    job_id = running(supervisor, "a")
    batch.forget(job_id)
    events = sync_until(supervisor, has("a", TaskState.FAILED), "a failed")
    [failed] = of(events, "a")
    assert "was not returned by DescribeJobs in 5 consecutive checks" in failed.info
    assert len(batch.requests) == 1


def test_a_revoked_tasks_job_is_terminated_before_revoke_returns_and_is_forgotten(supervisor, batch):
    job_id = running(supervisor, "a")
    supervisor.revoke("a", job_id)
    stopped, reason, urgent = batch.terminated[0]
    assert (stopped, urgent) == (job_id, True) and reason.startswith(REVOKED_PREFIX)
    assert supervisor.tracker.for_key("a") is None
    wait_until(lambda: len(batch.terminated) == 2, "terminated again in the background")
    batch.update(job_id, status="SUCCEEDED", startedAt=1, stoppedAt=2)
    events = [event for _ in range(20) for event in supervisor.sync()]
    assert of(events, "a") == [], "a forgotten task hears nothing more"


def test_a_job_submitted_while_its_task_was_revoked_is_terminated_when_the_answer_arrives(supervisor, batch):
    release = batch.hold("submit_job")
    submit(supervisor, "a")
    wait_until(lambda: batch.waiting["submit_job"] == 1, "SubmitJob on the wire")
    supervisor.revoke("a", None)
    assert batch.terminated == [], "no job to terminate yet"
    release.set()
    [job_id] = wait_until(lambda: batch.terminated_ids(), "the unwanted job terminated")
    assert job_id in batch.jobs
    events = sync_until(supervisor, lambda _: len(batch.terminated) >= 2, "terminated in the background")
    assert {reason.startswith(REVOKED_PREFIX) for _, reason, _ in batch.terminated} == {True}
    assert set(batch.terminated_ids()) == {job_id}
    assert of(events, "a") == [], "the scheduler never hears of a job it revoked"


def test_a_failing_handler_fails_only_its_own_task_and_terminates_its_job(supervisor, batch):
    class Unreadable(dict):
        """A record whose every field but its job id raises when read."""

        def get(self, key, default=None):
            if key == "jobId":
                return super().get(key, default)
            raise RuntimeError(f"cannot read {key}")

        def __getitem__(self, key):
            return self.get(key)

    broken, fine = running(supervisor, "a"), running(supervisor, "b")
    batch.replace(broken, Unreadable(jobId=broken))
    batch.update(fine, status="SUCCEEDED", startedAt=1, stoppedAt=2, container={"exitCode": 0})
    a_failed, b_succeeded = has("a", TaskState.FAILED), has("b", TaskState.SUCCESS)
    events = sync_until(supervisor, lambda events: a_failed(events) and b_succeeded(events), "a and b over")
    [failed] = of(events, "a")
    assert "could not track this task" in failed.info and "cannot read" in failed.info
    assert failed.log_event == "batch job lost"
    assert of(events, "b") == [
        TaskEvent("b", TaskState.RUNNING, fine),
        TaskEvent("b", TaskState.SUCCESS, fine),
    ]
    assert (broken, GIVEN_UP_REASON, True) in batch.terminated
    assert fine not in batch.terminated_ids()
    assert not supervisor.busy


def test_sync_never_waits_on_aws(supervisor, batch):
    running(supervisor, "a")
    release = batch.hold("describe_jobs", "submit_job")

    def sync_returns() -> list[TaskEvent]:
        """One heartbeat, on a thread of its own: it must return while AWS does not answer."""
        answered: list[list[TaskEvent]] = []
        heartbeat = threading.Thread(target=lambda: answered.append(supervisor.sync()), daemon=True)
        heartbeat.start()
        heartbeat.join(timeout=30)
        assert answered, "sync waited on AWS"
        return answered[0]

    submit(supervisor, "b")
    deadline = time.monotonic() + 10
    while not (batch.waiting["describe_jobs"] and batch.waiting["submit_job"]):
        assert time.monotonic() < deadline, f"AWS calls never made: {batch.waiting}"
        assert sync_returns() == []
    for _ in range(5):
        assert sync_returns() == []
    assert batch.waiting["describe_jobs"] and batch.waiting["submit_job"], "AWS still has not answered"
    release.set()
    events = sync_until(supervisor, has("b", TaskState.RUNNING), "b running once AWS answers")
    assert len(of(events, "b")) == 1


def test_stopping_with_terminate_jobs_terminates_every_tracked_job(make_supervisor, batch):
    supervisor = make_supervisor()
    jobs = {running(supervisor, key) for key in ("a", "b")}
    supervisor.stop(terminate_jobs=True)
    assert {(job_id, reason) for job_id, reason, _ in batch.terminated} == {
        (job_id, SHUTDOWN_REASON) for job_id in jobs
    }


def test_stopping_without_terminate_jobs_leaves_them_running(make_supervisor, batch):
    supervisor = make_supervisor()
    running(supervisor, "a")
    supervisor.stop(terminate_jobs=False)
    assert batch.terminated == []


def test_s3_mode_runs_twice_the_submit_threads_for_its_two_calls_per_submission():
    assert submit_threads(options(submit_concurrency=4)) == 4
    assert submit_threads(options(submit_concurrency=4, workload_transport=LOCATION)) == 8


def test_each_new_reason_a_waiting_job_gives_is_written_once_to_its_tasks_event_log(supervisor, batch):
    job_id = running(supervisor, "a")
    capacity = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested"
    batch.update(job_id, status="RUNNABLE", statusReason=capacity)
    events = sync_until(supervisor, has("a", None), "the reason written")
    [note] = of(events, "a")
    assert note.log_event == "batch job waiting" and job_id in note.info and capacity in note.info
    assert "allow more instance types" in note.info
    later = [event for _ in range(20) for event in supervisor.sync()]
    assert of(later, "a") == [], "the same reason is written once, however often Batch repeats it"
    batch.update(job_id, status="RUNNABLE", statusReason="waiting for the compute environment")
    events = sync_until(supervisor, has("a", None), "the new reason written")
    [note] = of(events, "a")
    assert "waiting for the compute environment" in note.info and "Jobs stuck in a RUNNABLE" in note.info
    batch.update(job_id, status="RUNNING", statusReason="started", startedAt=1)
    sync_until(supervisor, lambda _: supervisor.tracker.for_key("a").started, "a seen running")
    assert supervisor.tracker.for_key("a") is not None and batch.terminated == []
