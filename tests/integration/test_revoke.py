"""``revoke_task`` wherever the task is: queued here, waiting for a retry, inside SubmitJob, or tracked.

Driven as the scheduler drives the executor (queue_workload, heartbeat, get_event_buffer, revoke_task)
against the local Batch. In every case: no event after the revoke, the key is not in ``running``,
and no Batch job of the revoked try is left alive.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from airflow_batch_executor import supervisor as job_supervisor
from airflow_batch_executor.requests import task_specs as task_specs_module

from .botocore_faults import BotocoreFaults
from .helpers import pump, python_command, queue, wait_until, workload

SLEEP = python_command("import time; time.sleep(600)")
LIVE = {"SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"}


@pytest.fixture(autouse=True)
def _sleeping_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_specs_module, "workload_command", lambda w: SLEEP)


def revoke(executor, item, job_id=None) -> None:
    ti = item.ti
    executor.revoke_task(ti=SimpleNamespace(key=ti.key, external_executor_id=job_id))


def jobs_named(batch_env, prefix: str) -> list[dict]:
    client = batch_env.client("batch")
    summaries = client.list_jobs(
        jobQueue=batch_env.job_queue, filters=[{"name": "JOB_NAME", "values": [f"{prefix}*"]}]
    )
    ids = [job["jobId"] for job in summaries["jobSummaryList"]]
    return client.describe_jobs(jobs=ids)["jobs"] if ids else []


def heartbeats_after_revoke(executor, key, seconds: float, batch_env=None, name: str = "") -> list:
    """Heartbeat for a while, collecting events for ``key``; stop early once its job is terminated.

    With ``batch_env``, ``seconds`` only bounds a failure: the loop ends once the job is stopped, which
    the local Batch does on the job's own thread (late on a loaded machine).
    """
    events, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        executor.heartbeat()
        events += [(k, v) for k, v in executor.get_event_buffer().items() if k == key]
        if batch_env is not None and jobs_named(batch_env, name) and not live_jobs(batch_env, name):
            break
        time.sleep(0.05)
    return events


def live_jobs(batch_env, prefix: str) -> list[dict]:
    return [job for job in jobs_named(batch_env, prefix) if job["status"] in LIVE]


def assert_forgotten(executor, key) -> None:
    assert key not in executor.running and key not in executor.queued_tasks
    assert executor.jobs.tracker.for_key(key) is None


def test_revoked_while_still_queued_because_parallelism_is_full(batch_env):
    from airflow_batch_executor import AwsBatchExecutor

    executor = AwsBatchExecutor(parallelism=1)
    executor.start()
    try:
        holder, waiting = workload("holder", run_id="parallel-1"), workload("waiting", run_id="parallel-1")
        queue(executor, holder, waiting)
        pump(executor, lambda ev: any(k == holder.ti.key and s == "running" for k, s, _ in ev))
        assert waiting.ti.key in executor.queued_tasks
        revoke(executor, waiting)
        assert_forgotten(executor, waiting.ti.key)
        assert heartbeats_after_revoke(executor, waiting.ti.key, 2.0) == []
        assert jobs_named(batch_env, "dag-waiting-") == []
    finally:
        executor.terminate()
        for job in live_jobs(batch_env, "dag-holder-"):
            executor.gateway.terminate_job(job["jobId"], "test over")


def test_revoked_while_waiting_for_a_retry_after_throttling(make_executor, batch_env, monkeypatch):
    monkeypatch.setattr(job_supervisor, "backoff_delay", lambda attempt: 30.0)
    batch_env.faults.throttle(count=1, operation="SubmitJob")
    executor = make_executor()
    item = workload("backoff", run_id="revoke-backoff")
    queue(executor, item)
    deadline = time.monotonic() + 30  # a bound on failure only: the loop ends once SubmitJob was throttled
    while batch_env.faults.to_dict()["throttle"]:
        assert time.monotonic() < deadline, "SubmitJob was never throttled"
        executor.heartbeat()
        time.sleep(0.05)
    executor.heartbeat()
    assert executor.jobs.busy
    revoke(executor, item)
    assert_forgotten(executor, item.ti.key)
    assert not executor.jobs.busy
    assert heartbeats_after_revoke(executor, item.ti.key, 1.0) == []
    assert jobs_named(batch_env, "dag-backoff-") == []


def test_revoked_during_an_in_flight_submit_job_terminates_the_job_it_creates(
    make_executor, batch_env, monkeypatch
):
    # SubmitJob is held on its way to Batch until the revoke is done: in flight at the revoke however
    # slow the machine is (a fixed latency could run out first), and then it creates its job.
    faults = BotocoreFaults().install(monkeypatch)
    answer = threading.Event()
    faults.hold("SubmitJob", answer, count=1)
    executor = make_executor()
    item = workload("inflight", run_id="revoke-inflight")
    queue(executor, item)
    try:
        wait_until(lambda: executor.heartbeat() or ("SubmitJob", "held") in faults.injected)
        assert executor.jobs.busy and not batch_env.submitted_requests()
        revoke(executor, item)
        assert_forgotten(executor, item.ti.key)
    finally:
        answer.set()
    events = heartbeats_after_revoke(executor, item.ti.key, 30.0, batch_env, "dag-inflight-")
    assert events == []
    [job] = jobs_named(batch_env, "dag-inflight-")
    assert job["status"] == "FAILED" and "task_queued_timeout" in job["statusReason"]


def test_revoked_while_tracked_and_runnable(make_executor, batch_env):
    batch_env.faults.stuck_in_runnable("dag-runnable-*", count=None)
    executor = make_executor()
    item = workload("runnable", run_id="revoke-runnable")
    queue(executor, item)
    events = pump(executor, lambda ev: any(s == "running" for _, s, _ in ev))
    job_id = events[0][2]
    deadline = time.monotonic() + 30  # a bound on failure only: the loop ends once the job is RUNNABLE
    while executor.jobs.tracker.for_key(item.ti.key).status != "RUNNABLE":
        assert time.monotonic() < deadline
        executor.heartbeat()
        time.sleep(0.05)
    revoke(executor, item, job_id)
    assert_forgotten(executor, item.ti.key)
    assert heartbeats_after_revoke(executor, item.ti.key, 30.0, batch_env, "dag-runnable-") == []
    [job] = jobs_named(batch_env, "dag-runnable-")
    assert job["status"] == "FAILED" and "task_queued_timeout" in job["statusReason"]
