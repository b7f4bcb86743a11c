"""Jobs that fail before starting, never start, or lose their host: the right outcome for each."""

from __future__ import annotations

import pytest

from airflow_batch_executor.requests import task_specs as task_specs_module
from batch_devtools.local_batch import CAPACITY_REASON, MISCONFIGURATION_REASON

from ..helpers import describe, final_states, finished, pump, python_command, queue, wait_until, workload


@pytest.fixture(autouse=True)
def every_status_source(status_source):
    """Each scenario runs with DescribeJobs polling and with state-change events."""


@pytest.fixture(autouse=True)
def commands(monkeypatch):
    scripts = {"ok": "print('ok')", "slow": "import time; time.sleep(30)"}
    monkeypatch.setattr(
        task_specs_module, "workload_command", lambda w: python_command(scripts[w.ti.task_id])
    )


def events_of(executor, name):
    return [log for log in executor._task_event_logs if log.event == name]


def jobs_named(batch_env, prefix):
    return [r for r in batch_env.submitted_requests() if r["jobName"].startswith(prefix)]


def test_transient_failure_before_start_is_resubmitted_and_succeeds(make_executor, batch_env):
    batch_env.faults.fail_before_start("dag-ok-*", count=1)
    executor = make_executor()
    item = workload("ok", run_id="pull-timeout")
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    assert final_states(events) == {item.ti.key: "success"}
    requests = batch_env.submitted_requests()
    assert len(requests) == 2 and requests[0]["jobName"] == requests[1]["jobName"]
    [resubmitted] = events_of(executor, "batch job resubmitted")
    assert "CannotPullContainerError" in resubmitted.extra and "i/o timeout" in resubmitted.extra
    running = [info for key, state, info in events if state == "running"]
    first, second = dict.fromkeys(running)  # each job's id, repeated once its container started
    assert first != second and running[-1] == second
    assert [info for key, state, info in events if state == "success"] == [second]


def test_transient_failures_stop_after_max_submit_job_attempts(make_executor, batch_env):
    batch_env.faults.fail_before_start("dag-ok-*", count=None)
    executor = make_executor()
    item = workload("ok", run_id="always-timeout")
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    [(_, state, info)] = [e for e in events if e[0] == item.ti.key and e[1] != "running"]
    assert state == "failed" and "submitted 3 time(s)" in info and "max_submit_job_attempts" in info
    assert "Not resubmitted" in info and "resubmitting" not in info.lower().replace("not resubmitted", "")
    assert len(batch_env.submitted_requests()) == 3


def test_permanent_failure_before_start_fails_at_once(make_executor, batch_env):
    batch_env.faults.fail_before_start("dag-ok-*", count=1, permanent=True)
    executor = make_executor()
    item = workload("ok", run_id="image-missing")
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    [(_, state, info)] = [e for e in events if e[0] == item.ti.key and e[1] != "running"]
    assert state == "failed" and "not found" in info
    assert len(batch_env.submitted_requests()) == 1
    [logged] = events_of(executor, "batch job failed")
    assert "CannotPullContainerError" in logged.extra


def test_host_terminated_mid_run_fails_the_try_without_resubmitting(make_executor, batch_env):
    batch_env.faults.host_terminated("dag-slow-*", count=1, after_seconds=0.3)
    executor = make_executor()
    item = workload("slow", run_id="spot-reclaim")
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    [(_, state, info)] = [e for e in events if e[0] == item.ti.key and e[1] != "running"]
    assert state == "failed" and "Host EC2 (instance i-0123456789abcdef0) terminated." in info
    assert "after the container started" in info
    assert len(batch_env.submitted_requests()) == 1


def reconcile_every_second(monkeypatch):
    """A RUNNABLE job's reason changes without a status change, so no event tells of it: with events,
    DescribeJobs finds it when it reconciles quiet jobs."""
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__STATUS_RECONCILE_INTERVAL", "1")


def test_misconfigured_job_stuck_in_runnable_is_terminated_and_failed(make_executor, batch_env, monkeypatch):
    reconcile_every_second(monkeypatch)
    batch_env.faults.stuck_in_runnable("dag-ok-*", count=1, reason=MISCONFIGURATION_REASON)
    executor = make_executor()
    item = workload("ok", run_id="too-big")
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    job_id = next(info for _, state, info in events if state == "running")
    [(_, state, info)] = [e for e in events if e[0] == item.ti.key and e[1] != "running"]
    assert state == "failed" and "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT" in info
    # The executor's TerminateJob runs in the background and the local Batch stops the job on its own
    # thread: wait for that, heartbeating as the scheduler does.
    wait_until(lambda: executor.heartbeat() or describe(batch_env, job_id)["status"] == "FAILED")


def test_capacity_wait_is_left_alone_unless_a_pending_limit_is_set(
    make_executor, batch_env, monkeypatch, caplog
):
    reconcile_every_second(monkeypatch)
    batch_env.faults.stuck_in_runnable("dag-ok-*", count=None, reason=CAPACITY_REASON)
    executor = make_executor()
    waiting = workload("ok", run_id="capacity")
    queue(executor, waiting)

    def waiting_for_capacity(_events: list) -> bool:
        # Wait on this job's own state: the log may still hold a line about an earlier test's job.
        job = executor.jobs.tracker.for_key(waiting.ti.key)
        return job is not None and job.status == "RUNNABLE" and CAPACITY_REASON in (job.status_reason or "")

    events = pump(executor, waiting_for_capacity, timeout=20)
    assert final_states(events) == {}
    job = executor.jobs.tracker.for_key(waiting.ti.key)
    assert f"Batch job {job.job_id} for {waiting.ti.key} is RUNNABLE: {CAPACITY_REASON}" in caplog.text

    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__MAX_PENDING_SECONDS", "1")
    limited = make_executor()
    item = workload("ok", run_id="capacity-limited")
    queue(limited, item)
    events = pump(limited, finished(item.ti.key))
    [(_, state, info)] = [e for e in events if e[0] == item.ti.key and e[1] != "running"]
    assert state == "failed" and "did not start within 1s" in info and "CAPACITY:" in info
    batch_env.faults.clear()
