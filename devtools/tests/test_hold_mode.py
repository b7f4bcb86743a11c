"""Hold mode (jobs without a thread or a process, for load tests) and the API call counter."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from waiting import describe, wait_for_status, wait_until

from batch_devtools.local_batch import LocalBatch, LocalBatchControl
from batch_devtools.local_batch.__main__ import _parser
from batch_devtools.local_batch.hold import plan_hold
from batch_devtools.local_batch.runtime import JobSettings

STATUSES_BEFORE_RUNNING = ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING"]


@pytest.fixture
def hold(local_batch: LocalBatch) -> LocalBatch:
    local_batch.settings.job_mode = "hold"
    local_batch.settings.step_delay = 0.05
    return local_batch


def submit(batch: Any, lb: LocalBatch, name: str, **kwargs: Any) -> str:
    return batch.submit_job(jobName=name, jobQueue=lb.job_queue, jobDefinition=lb.job_definition, **kwargs)[
        "jobId"
    ]


def wait_for(batch: Any, job_id: str, status: str) -> dict[str, Any]:
    return wait_for_status(batch, job_id, (status,))


def _plan(**overrides: Any) -> Any:
    kwargs: dict[str, Any] = {
        "created": 100.0,
        "step_delay": 1.0,
        "hold_seconds": None,
        "timeout_seconds": None,
        "container_exited": "exited",
        "failed_to_start": "no start",
        "timed_out": "timeout",
    }
    kwargs.update(overrides)
    return plan_hold(**kwargs)


def test_a_plan_walks_the_statuses_on_the_clock_and_holds_running() -> None:
    plan = _plan()
    assert [plan.status_at(100.0 + second + 0.5) for second in range(4)] == STATUSES_BEFORE_RUNNING
    assert plan.running_at == 104.0
    assert plan.status_at(1e9) == "RUNNING"


def test_the_earliest_end_wins() -> None:
    plan = _plan(hold_seconds=10, timeout_seconds=5)
    assert plan.end is not None and (plan.end.status, plan.end.reason, plan.end.exit_code) == (
        "FAILED",
        "timeout",
        143,
    )
    assert plan.status_at(108.9) == "RUNNING" and plan.status_at(109.0) == "FAILED"
    succeeds = _plan(hold_seconds=2)
    assert succeeds.end is not None and (succeeds.end.status, succeeds.end.exit_code, succeeds.end.at) == (
        "SUCCEEDED",
        0,
        106.0,
    )


def test_stuck_and_failing_plans_never_reach_running() -> None:
    stuck = _plan(stuck_reason="capacity")
    assert stuck.running_at is None and stuck.status_at(1e9) == "RUNNABLE"
    failing = _plan(fail_to_start_reason="pull")
    assert failing.running_at is None
    assert failing.status_at(103.5) == "STARTING" and failing.status_at(104.0) == "FAILED"


def test_a_late_reader_still_passes_every_status_before_running_in_order() -> None:
    plan = _plan()
    assert plan.steps_passed(100.0) == ("SUBMITTED",)
    assert plan.steps_passed(102.5) == ("SUBMITTED", "PENDING", "RUNNABLE")
    assert plan.steps_passed(1e9) == tuple(STATUSES_BEFORE_RUNNING)
    assert _plan(stuck_reason="capacity").steps_passed(1e9) == ("SUBMITTED", "PENDING", "RUNNABLE")
    assert _plan(step_delay=0).steps_passed(1e9) == ("SUBMITTED",)


def test_a_held_job_read_late_publishes_each_status_once_in_order(
    hold: LocalBatch, batch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hold.settings.publish_events = True
    publisher = hold.runtime.events
    assert publisher is not None
    published: list[str] = []
    monkeypatch.setattr(publisher, "publish", lambda detail: published.append(detail["status"]))
    monkeypatch.setattr(publisher, "watch", lambda job: None)  # nobody catches it up until it is read
    request = {"jobQueue": hold.job_queue, "jobDefinition": hold.job_definition}
    job_id = batch.submit_job(jobName="late-reader", **request)["jobId"]
    time.sleep(0.3)  # long past all four steps of 0.05 s: the first read comes late
    assert describe(batch, job_id)["status"] == "RUNNING"
    assert published == [*STATUSES_BEFORE_RUNNING, "RUNNING"]


def test_a_plan_tells_when_its_status_next_changes() -> None:
    plan = _plan()
    changes, after = [], 100.0
    while (after := plan.next_change(after)) is not None:
        changes.append(after)
    assert changes == [101.0, 102.0, 103.0, 104.0]  # then RUNNING until terminated: no change to wait for
    ends = _plan(hold_seconds=2)
    assert ends.next_change(104.0) == 106.0 and ends.next_change(106.0) is None
    assert _plan(stuck_reason="capacity").next_change(101.5) == 102.0
    assert _plan(stuck_reason="capacity").next_change(102.0) is None
    assert _plan(fail_to_start_reason="pull").next_change(103.0) == 104.0
    assert _plan(step_delay=0).next_change(0.0) is None


def test_job_mode_is_validated_and_offered_on_the_command_line() -> None:
    with pytest.raises(ValueError, match="job_mode"):
        JobSettings(job_mode="docker")
    args = _parser().parse_args(["--job-mode", "hold", "--hold-seconds", "3"])
    assert (args.job_mode, args.hold_seconds) == ("hold", 3.0)
    assert _parser().parse_args([]).job_mode == "process"
    inline = _parser().parse_args(["--job-mode", "inline", "--inline-run-seconds", "0.2"])
    assert (inline.job_mode, inline.inline_run_seconds) == ("inline", 0.2)
    assert JobSettings(job_mode="inline").inline_run_seconds > 0


def test_held_job_runs_nothing_stays_running_and_terminates_with_143(hold: LocalBatch, batch: Any) -> None:
    job_id = submit(batch, hold, "held-one", containerOverrides={"command": ["false"]})
    seen: list[str] = []

    def running() -> bool:
        status = describe(batch, job_id)["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        return status == "RUNNING"

    wait_until(running, f"job {job_id} is RUNNING")
    assert seen[-1] == "RUNNING" and set(seen) <= {*STATUSES_BEFORE_RUNNING, "RUNNING"}
    assert hold.job_pid(job_id) is None
    time.sleep(0.3)
    running = describe(batch, job_id)
    assert running["status"] == "RUNNING" and running["startedAt"] >= running["createdAt"]
    assert running["container"]["logStreamName"].endswith(job_id)

    batch.terminate_job(jobId=job_id, reason="enough")
    ended = describe(batch, job_id)
    assert (ended["status"], ended["statusReason"], ended["container"]["exitCode"]) == (
        "FAILED",
        "enough",
        143,
    )
    assert ended["stoppedAt"] >= ended["startedAt"]


def test_held_job_succeeds_after_hold_seconds(hold: LocalBatch, batch: Any) -> None:
    hold.settings.hold_seconds = 0.2
    job_id = submit(batch, hold, "held-short")
    job = wait_for(batch, job_id, "SUCCEEDED")
    assert job["container"]["exitCode"] == 0 and job["stoppedAt"] - job["startedAt"] == pytest.approx(
        200, abs=2
    )


def test_held_job_terminated_before_it_starts_never_started(hold: LocalBatch, batch: Any) -> None:
    hold.settings.step_delay = 10
    job_id = submit(batch, hold, "held-early")
    batch.terminate_job(jobId=job_id, reason="revoked")
    job = describe(batch, job_id)
    assert (job["status"], job["statusReason"]) == ("FAILED", "revoked")
    assert "startedAt" not in job and "exitCode" not in job["container"]


def test_job_faults_apply_to_held_jobs(hold: LocalBatch, batch: Any) -> None:
    hold.faults.stuck_in_runnable("held-stuck*", reason="CAPACITY:no room")
    hold.faults.fail_before_start("held-pull*")
    stuck = submit(batch, hold, "held-stuck")
    pull = submit(batch, hold, "held-pull")
    failed = wait_for(batch, pull, "FAILED")
    assert failed["statusReason"] == "Task failed to start"
    assert failed["container"]["reason"].startswith("CannotPullContainerError")
    assert "startedAt" not in failed
    time.sleep(0.3)
    job = describe(batch, stuck)
    assert (job["status"], job["statusReason"]) == ("RUNNABLE", "CAPACITY:no room")


def test_thousands_of_held_jobs_need_no_threads_and_describe_fast(hold: LocalBatch, batch: Any) -> None:
    hold.settings.step_delay = 0
    threads_before = threading.active_count()
    ids = [submit(batch, hold, f"held-many-{index}") for index in range(300)]
    assert threading.active_count() <= threads_before + 2  # werkzeug request threads come and go
    started = time.monotonic()
    jobs = batch.describe_jobs(jobs=ids[:100])["jobs"]
    # Only a gross slowdown fails here (a held job's read doing real work): a loaded CI machine may take
    # seconds over one HTTP round trip. How fast DescribeJobs is belongs in benchmarks/; the point of
    # this test is that held jobs need no threads.
    assert time.monotonic() - started < 10.0
    assert len(jobs) == 100 and {job["status"] for job in jobs} == {"RUNNING"}
    assert set(hold.unfinished_jobs()) >= set(ids)
    listed = batch.list_jobs(jobQueue=hold.job_queue, jobStatus="RUNNING")["jobSummaryList"]
    assert set(ids) <= {job["jobId"] for job in listed}
    for job_id in ids:
        batch.terminate_job(jobId=job_id, reason="cleanup")


def test_process_mode_stays_the_default(local_batch: LocalBatch, batch: Any) -> None:
    assert local_batch.settings.job_mode == "process"
    job_id = submit(
        batch, local_batch, "process-default", containerOverrides={"command": ["python", "-c", "pass"]}
    )
    job = wait_for(batch, job_id, "SUCCEEDED")
    assert job["container"]["exitCode"] == 0


def test_api_calls_are_counted_per_operation(local_batch: LocalBatch, batch: Any) -> None:
    control = LocalBatchControl(local_batch.endpoint_url)
    control.clear_calls()
    local_batch.faults.throttle(count=1, operation="DescribeJobs")
    batch.describe_jobs(jobs=["a" * 32])  # throttled once, retried by botocore: two calls arrive
    batch.describe_job_queues()
    assert control.calls() == {"describejobs": 2, "describejobqueues": 1}
    assert local_batch.api_calls() == control.calls()
    control.clear_calls()
    assert control.calls() == {}


def test_jobs_created_in_bulk_are_held_like_submitted_ones_and_not_counted(
    hold: LocalBatch, batch: Any
) -> None:
    control = LocalBatchControl(hold.endpoint_url)
    control.clear_calls()
    control.clear_submitted_requests()
    request = {"jobQueue": hold.job_queue, "jobDefinition": hold.job_definition, "tags": {"load": "yes"}}
    ids = control.create_jobs([{**request, "jobName": f"bulk-{index}"} for index in range(3)])
    assert len(set(ids)) == 3
    assert (control.calls(), control.submitted_requests()) == ({}, [])
    job = wait_for(batch, ids[0], "RUNNING")
    assert (job["jobName"], job["tags"]) == ("bulk-0", {"load": "yes"})
    with pytest.raises(ValueError, match="cannot create the jobs"):
        control.create_jobs([{**request, "jobName": "x", "jobQueue": "no-such-queue"}])
    for job_id in ids:
        batch.terminate_job(jobId=job_id, reason="cleanup")


def test_held_running_jobs_exit_on_demand_at_a_known_moment(hold: LocalBatch, batch: Any) -> None:
    control = LocalBatchControl(hold.endpoint_url)
    ids = [submit(batch, hold, f"held-exit-{index}") for index in range(3)]
    for job_id in ids[:2]:
        wait_for(batch, job_id, "RUNNING")
    batch.terminate_job(jobId=ids[1], reason="gone")
    before = int(time.time() * 1000)
    stopped = control.exit_jobs([ids[0], ids[1], "no-such-job"])
    assert stopped[ids[1]] is None and stopped["no-such-job"] is None
    assert before <= stopped[ids[0]] <= int(time.time() * 1000)
    job = describe(batch, ids[0])
    assert (job["status"], job["stoppedAt"], job["container"]["exitCode"]) == (
        "SUCCEEDED",
        stopped[ids[0]],
        0,
    )
    wait_for(batch, ids[2], "RUNNING")
    control.exit_jobs([ids[2]], exit_code=3)
    failed = describe(batch, ids[2])
    assert (failed["status"], failed["container"]["exitCode"]) == ("FAILED", 3)


def test_fail_after_start_ends_a_held_job_with_its_exit_code_once_running(
    hold: LocalBatch, batch: Any
) -> None:
    hold.faults.fail_after_start(pattern="held-crash*", exit_code=7)
    crashed = submit(batch, hold, "held-crash")
    held = submit(batch, hold, "held-steady")

    job = wait_for(batch, crashed, "FAILED")

    assert job["container"]["exitCode"] == 7 and "startedAt" in job
    assert job["attempts"][0]["startedAt"] == job["startedAt"]
    assert describe(batch, held)["status"] != "FAILED"
    batch.terminate_job(jobId=held, reason="cleanup")
