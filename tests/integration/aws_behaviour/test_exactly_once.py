"""The paths where a try could run twice, a job could outlive its task or status could stop, each
through the local Batch: every test here failed before its fix.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest

from airflow_batch_executor import supervisor as job_supervisor
from airflow_batch_executor.requests import task_specs as task_specs_module
from airflow_batch_executor.status import poller as poller_module

from ..botocore_faults import BotocoreFaults
from ..helpers import (
    BUCKET,
    MINTS,
    describe,
    executor_job_id,
    final_states,
    finished,
    pump,
    python_command,
    queue,
    short_lived_tokens,
    ti_for,
    wait_until,
    workload,
)

SLOW = python_command("import time; time.sleep(3); print('ran')")
LONG = python_command("import time; time.sleep(60)")
"""A job that ends only when terminated within any test's time: one that ended on its own cannot pass
for one the executor stopped, however slow the machine."""
needs_minting = pytest.mark.skipif(not MINTS, reason="this Airflow cannot sign workload tokens")


@pytest.fixture
def slow_tasks(monkeypatch):
    monkeypatch.setattr(task_specs_module, "workload_command", lambda w: SLOW)


@pytest.fixture
def long_tasks(monkeypatch, batch_env):
    """Every task runs ``LONG``; jobs the test leaves alive (it failed) are terminated after it."""
    monkeypatch.setattr(task_specs_module, "workload_command", lambda w: LONG)
    yield
    terminate_live_jobs(batch_env)


def terminate_live_jobs(batch_env) -> None:
    """Terminate every job submitted during the test that has not ended."""
    client = batch_env.client("batch")
    for request in batch_env.submitted_requests():
        listed = client.list_jobs(
            jobQueue=request["jobQueue"], filters=[{"name": "JOB_NAME", "values": [request["jobName"]]}]
        )["jobSummaryList"]
        for job in listed:
            if job["status"] not in ("SUCCEEDED", "FAILED"):
                client.terminate_job(jobId=job["jobId"], reason="test over")


@pytest.fixture
def faults(monkeypatch) -> BotocoreFaults:
    return BotocoreFaults().install(monkeypatch)


def running_job_ids(events) -> dict:
    return {key: info for key, state, info in events if state == "running"}


def test_adoption_with_throttled_look_ups_hands_back_nothing_it_cannot_prove(
    make_executor, batch_env, slow_tasks, faults
):
    """One throttled ListJobs used to make the new scheduler hand back every task instance, including
    those whose jobs were running: each would then have run a second time."""
    old = make_executor()
    by_id, by_name = workload("adopt", run_id="by-id"), workload("adopt", run_id="by-name")
    queue(old, by_id, by_name)
    job_of = running_job_ids(pump(old, lambda ev: len(running_job_ids(ev)) == 2))
    old._stop(terminate_jobs=False)

    faults.inject("ListJobs", "throttle", count=12)  # more than the read client's 5 attempts, twice
    faults.inject("DescribeJobs", "throttle", count=6)
    new = make_executor()
    never = workload("adopt", run_id="never-submitted")
    handed_back = new.try_adopt_task_instances(
        [ti_for(by_id, job_of[by_id.ti.key]), ti_for(by_name, None), ti_for(never, None)]
    )
    assert handed_back == [], "nothing is proven to have no job while AWS does not answer"
    assert {by_id.ti.key, by_name.ti.key, never.ti.key} <= new.running
    events = pump(new, finished(by_id.ti.key, by_name.ti.key, never.ti.key), timeout=90)
    assert final_states(events) == {
        by_id.ti.key: "success",
        by_name.ti.key: "success",
        never.ti.key: "failed",
    }
    reason = next(info for key, state, info in events if key == never.ti.key and state == "failed")
    assert "no AWS Batch job exists for this try" in reason
    assert (by_name.ti.key, "running", job_of[by_name.ti.key]) in events
    assert len(batch_env.submitted_requests()) == 2, "no try got a second job"
    assert ("ListJobs", "throttle") in faults.injected


def test_a_task_instance_proven_to_have_no_job_is_handed_back_and_a_late_job_is_stopped(
    make_executor, batch_env, long_tasks, monkeypatch
):
    monkeypatch.setattr(poller_module, "NAME_CHECKS_AFTER_SECONDS", (0.0, 1.0, 2.0, 4.0))
    # A look-up not answered within ADOPTION_WAIT_SECONDS is adopted provisionally, not handed back:
    # on a loaded machine 5 s can pass before ListJobs answers. The wait ends once all are answered.
    monkeypatch.setattr(job_supervisor, "ADOPTION_WAIT_SECONDS", 60.0)
    new = make_executor()
    never = ti_for(workload("adopt", run_id="handed-back"), None)
    assert new.try_adopt_task_instances([never]) == [never]
    # The old scheduler's SubmitJob reached Batch after all (ListJobs had not listed it yet); the
    # scheduler meanwhile reset the task instance, so this job must not run beside the new try.
    queue_name, name = new.factory.locate(never)
    late = batch_env.client("batch").submit_job(
        jobName=name,
        jobQueue=queue_name,
        jobDefinition=batch_env.job_definition,
        containerOverrides={"command": LONG},
    )["jobId"]
    deadline = time.monotonic() + 30
    while describe(batch_env, late)["status"] != "FAILED":
        assert time.monotonic() < deadline
        new.heartbeat()
        time.sleep(0.1)
    assert "handed back" in describe(batch_env, late)["statusReason"]


def test_one_malformed_status_message_never_stops_event_driven_status(make_executor, event_mode, slow_tasks):
    """A message whose ``status`` is a list used to kill the receiver thread for good; every outcome
    then waited for reconciliation (60 s here, beyond this test's patience)."""
    sqs = event_mode.client("sqs")
    base = {"source": "aws.batch", "detail-type": "Batch Job State Change"}
    for body in (
        json.dumps({**base, "detail": {"jobId": "x", "status": ["RUNNING"]}}),
        json.dumps({**base, "detail": {"jobId": 7, "status": "RUNNING"}}),
        json.dumps({**base, "detail": ["not", "a", "dict"]}),
        "not json at all",
    ):
        sqs.send_message(QueueUrl=event_mode.status_queue_url, MessageBody=body)
    executor = make_executor()
    item = workload("after-junk")
    queue(executor, item)
    events = pump(executor, finished(item.ti.key), timeout=40)
    assert final_states(events) == {item.ti.key: "success"}
    receiver = executor.jobs._receiver
    assert receiver.answering and all(thread.is_alive() for thread in receiver._threads)


def test_a_revoke_racing_a_lost_submit_job_answer_stops_the_job_that_answer_made(
    make_executor, batch_env, long_tasks, faults, monkeypatch
):
    """Command mode: the job exists, its id is unknown, and the task is requeued: it must not run."""
    monkeypatch.setattr(job_supervisor, "backoff_delay", lambda attempt: 60.0)  # the retry waits
    faults.lose_response("SubmitJob", count=1)
    executor = make_executor()
    item = workload("raced")
    queue(executor, item)

    def lost_answer_seen() -> bool:
        executor.heartbeat()
        submission = executor.jobs._submitter._live.get(item.ti.key)
        return submission is not None and submission.maybe_submitted

    wait_until(lost_answer_seen)
    executor.revoke_task(ti=ti_for(item, None))
    client = batch_env.client("batch")
    name = batch_env.submitted_requests()[0]["jobName"]
    deadline = time.monotonic() + 30
    while True:
        [job] = client.list_jobs(
            jobQueue=batch_env.job_queue, filters=[{"name": "JOB_NAME", "values": [name]}]
        )["jobSummaryList"]
        if job["status"] == "FAILED":
            break
        assert time.monotonic() < deadline, job
        executor.heartbeat()
        time.sleep(0.1)
    assert job["statusReason"].startswith("Revoked by the Airflow scheduler")
    assert executor.get_event_buffer() == {} and len(batch_env.submitted_requests()) == 1


def test_shutdown_waits_for_a_slow_s3_only_so_long(make_executor, batch_env, s3_mode, faults):
    """Removals used to be waited for, one by one and without bound: minutes during an S3 outage,
    forever here, where S3 never answers until the executor has ended."""
    s3_down = threading.Event()
    faults.hold("DeleteObjects", s3_down)
    executor = make_executor()
    items = [workload("tidy", run_id=f"run-{n}") for n in range(3)]
    queue(executor, *items)
    pump(executor, finished(*(item.ti.key for item in items)))
    wait_until(lambda: ("DeleteObjects", "held") in faults.injected)
    try:
        executor.end()
    finally:
        s3_down.set()


@needs_minting
def test_a_refresh_never_brings_back_a_workload_a_job_already_read(
    make_executor, batch_env, s3_mode, monkeypatch
):
    """The object was read (by a first attempt that Batch then retried, say) while the executor still
    thought the job waited: an unconditional rewrite would have let the next start run the try again."""
    lifetime = 4
    short_lived_tokens(monkeypatch, lifetime)
    batch_env.faults.stuck_in_runnable(pattern="dag-consumed-*")
    executor = make_executor()
    item = workload("consumed")
    queue(executor, item)
    events = pump(executor, lambda events: any(state == "running" for _, state, _ in events))
    [key] = s3_mode.objects()
    s3_mode.s3.delete_object(Bucket=BUCKET, Key=key)  # what the bootstrap does once it read it
    job = executor.jobs.tracker.for_key(item.ti.key)
    # Waits on the refresh that found the object gone, not a duration: on a loaded machine it may come
    # late, and how soon it comes is the half-life rule's (tests/unit/test_handoff.py), not this test's.
    events += pump(executor, lambda _: job.workload.consumed, timeout=60)
    assert s3_mode.objects() == [], "not recreated"
    assert describe(batch_env, executor_job_id(events))["status"] == "RUNNABLE"
    assert batch_env.release_stuck_jobs()
    events += pump(executor, finished(item.ti.key))
    reason = next(info for key, state, info in events if state == "failed")
    assert "its workload object was already consumed or removed" in reason


@needs_minting
def test_an_adopted_waiting_jobs_token_is_refreshed(make_executor, batch_env, s3_mode, monkeypatch):
    """Only the scheduler that submitted a job used to refresh its token: an adopted one expired."""
    lifetime = 6
    short_lived_tokens(monkeypatch, lifetime)
    batch_env.faults.stuck_in_runnable(pattern="dag-orphaned-*")
    old = make_executor()
    item = workload("orphaned")
    queue(old, item)
    job_id = executor_job_id(pump(old, lambda ev: any(state == "running" for _, state, _ in ev)))
    old._stop(terminate_jobs=False)
    [key] = s3_mode.objects()

    def token() -> str:
        return json.loads(s3_mode.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())["token"]

    first = token()
    new = make_executor()
    assert new.try_adopt_task_instances([ti_for(item, job_id)]) == []
    # Waits on the refresh, not a duration: on a loaded machine it may come late, and how soon it comes
    # is the half-life rule's (tests/unit/test_handoff.py), not this test's.
    pump(new, lambda _: token() != first, timeout=60)
    assert describe(batch_env, job_id)["status"] == "RUNNABLE"
    assert batch_env.release_stuck_jobs()
    events = pump(new, finished(item.ti.key))
    assert final_states(events) == {item.ti.key: "success"}
    assert s3_mode.objects() == []


def test_a_batch_retry_after_the_container_started_never_runs_the_try_again(
    make_executor, batch_env, s3_mode, monkeypatch
):
    """Batch re-ran a job whose first attempt had run the task (the executor sends attempts = 1, but a
    retry it did not ask for must still find nothing to run); short tokens keep refreshes due."""
    short_lived_tokens(monkeypatch, 4)
    batch_env.faults.retry_after_start(pattern="dag-retried-*")
    executor = make_executor()
    item = workload("retried")
    queue(executor, item)

    def started_or_ended(events: list) -> bool:
        job = executor.jobs.tracker.for_key(item.ti.key)
        return (job is not None and job.started) or item.ti.key in final_states(events)

    # A pending limit from the start would fail the try if a loaded machine took longer than it to
    # start the first attempt. Set once the executor has seen a container start, a limit long passed
    # since submission proves the point: a started job going back to RUNNABLE is never failed for it.
    events = pump(executor, started_or_ended)
    assert final_states(events) == {}, "it ended before the executor saw it started"
    monkeypatch.setattr(
        executor.jobs, "_limits", dataclasses.replace(executor.jobs._limits, max_pending_seconds=2.0)
    )
    events += pump(executor, finished(item.ti.key))
    reason = next(info for key, state, info in events if state == "failed")
    assert "workload bootstrap stopped before running the task" in reason, reason
    record = describe(batch_env, executor_job_id(events))
    assert len(record["attempts"]) == 2
    logs = batch_env.client("logs")
    ran = []
    for attempt in record["attempts"]:
        stream = attempt["container"]["logStreamName"]
        lines = logs.get_log_events(logGroupName=batch_env.log_group, logStreamName=stream)["events"]
        ran += [line["message"] for line in lines if line["message"].startswith("FAKE-TASK-SDK ")]
    assert len(ran) == 1, "the try ran once, in the first attempt"
    assert s3_mode.objects() == []


def test_a_waiting_job_whose_object_is_gone_is_stopped(make_executor, batch_env, s3_mode, monkeypatch):
    """The orphan of an in-flight revoke whose scheduler died before the answer: nobody knows its id,
    and the requeued try's job has its name. It cannot run (no object), but it would hold capacity."""
    from airflow_batch_executor.recovery import orphan_sweep

    monkeypatch.setattr(orphan_sweep, "SWEEP_SECONDS", 0.5)
    batch_env.faults.stuck_in_runnable(pattern="dag-orphaned-*", count=2)
    prefix = f"s3://{BUCKET}/{s3_mode.prefix}/global"
    client = batch_env.client("batch")
    submitted = {
        name: client.submit_job(
            jobName=name,
            jobQueue=batch_env.job_queue,
            jobDefinition=batch_env.job_definition,
            containerOverrides={
                "command": [
                    "python",
                    "-m",
                    "airflow_batch_executor.in_job.bootstrap",
                    f"{prefix}/{name}.abc.json",
                ]
            },
        )["jobId"]
        for name in ("dag-orphaned-try1-x", "dag-orphaned-try1-y")
    }
    kept = f"{s3_mode.prefix}/global/dag-orphaned-try1-y.abc.json"
    s3_mode.s3.put_object(Bucket=BUCKET, Key=kept, Body=b"{}")  # its object is there: not an orphan
    executor = make_executor()
    wait_until(
        lambda: (
            executor.heartbeat()
            or describe(batch_env, submitted["dag-orphaned-try1-x"])["status"] == "FAILED"
        ),
        timeout=30,
    )
    orphan = describe(batch_env, submitted["dag-orphaned-try1-x"])
    assert orphan["statusReason"].startswith("Stopped by the Airflow scheduler: its workload object is gone")
    assert describe(batch_env, submitted["dag-orphaned-try1-y"])["status"] == "RUNNABLE"
    client.terminate_job(jobId=submitted["dag-orphaned-try1-y"], reason="test over")


def test_a_revoke_whose_terminate_fails_before_the_scheduler_dies_leaves_no_job_that_can_run(
    make_executor, batch_env, s3_mode, monkeypatch
):
    """The fault soak's seed 206 found it: TerminateJob refused at the revoke, the scheduler dead
    before its retry in the background, and the object left for a background removal that never came.
    The waiting job kept a workload it could run, and the next scheduler's sweep, seeing the object,
    left it alone. The object is now removed before ``revoke_task`` returns."""
    from airflow_batch_executor.recovery import orphan_sweep

    monkeypatch.setattr(orphan_sweep, "SWEEP_SECONDS", 0.5)
    batch_env.faults.stuck_in_runnable(pattern="dag-abandoned-*", count=None)
    dying = make_executor()
    item = workload("abandoned")
    queue(dying, item)
    job_id = executor_job_id(pump(dying, lambda events: any(state == "running" for _, state, _ in events)))
    wait_until(lambda: describe(batch_env, job_id)["status"] == "RUNNABLE")
    # From here on this scheduler's calls in the background fail until it dies: its TerminateJob
    # retries, and its batched removal of objects (the one removal that would not fail is the one
    # made before revoke_task returns).
    batch_env.faults.throttle(count=None, operation="TerminateJob")
    batch_env.faults.throttle(count=None, operation="DeleteObjects")
    dying.revoke_task(ti=ti_for(item, job_id))
    assert s3_mode.objects() == [], "the object is gone once revoke_task returns"
    dying._stop(terminate_jobs=False)  # the scheduler dies; its retries of TerminateJob die with it
    assert describe(batch_env, job_id)["status"] == "RUNNABLE"
    batch_env.faults.clear()  # TerminateJob answers again; the job stays held in RUNNABLE
    successor = make_executor()
    wait_until(lambda: successor.heartbeat() or describe(batch_env, job_id)["status"] == "FAILED", timeout=30)
    assert describe(batch_env, job_id)["statusReason"].startswith("Stopped by the Airflow scheduler")
    assert len(batch_env.submitted_requests()) == 1 and successor.get_event_buffer() == {}
