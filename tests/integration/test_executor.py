"""AwsBatchExecutor against the local Batch: the scheduler-facing interface, real HTTP underneath."""

from __future__ import annotations

import json
import re

import jwt
import pytest

from airflow_batch_executor import supervisor as job_supervisor
from airflow_batch_executor.airflow_side import compat
from airflow_batch_executor.requests import task_specs as task_specs_module
from airflow_batch_executor.requests.naming import job_name
from airflow_batch_executor.requests.task_specs import task_identity

from .helpers import (
    describe,
    final_states,
    finished,
    pump,
    python_command,
    queue,
    states_of,
    ti_for,
    wait_until,
    workload,
)

SCRIPTS = {
    "ok": "print('hello from batch')",
    "boom": "import sys; print('failing'); sys.exit(3)",
    "sleep": "import time; time.sleep(60)",
}


@pytest.fixture
def scripted(monkeypatch):
    """Jobs run a small script chosen by task id instead of the Task SDK (which needs an api-server)."""

    def command(workload):
        return python_command(SCRIPTS[workload.ti.task_id.split(".")[0]])

    monkeypatch.setattr(task_specs_module, "workload_command", command)


@pytest.fixture
def request_cleanup():
    """Run the cleanups a test registers once it is over, whether it passed or failed."""
    cleanups = []
    yield cleanups.append
    for cleanup in cleanups:
        cleanup()


def requests_for(local_batch, task_id):
    return [r for r in local_batch.submitted_requests() if r["jobName"].startswith(f"dag-{task_id}-")]


def test_submit_request_carries_command_environment_name_and_tags(make_executor, batch_env, request_cleanup):
    executor = make_executor()
    item = workload(
        "real",
        executor_config={
            "containerOverrides": {
                "environment": [{"name": "MY_SETTING", "value": "42"}],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "0.5"},
                    {"type": "MEMORY", "value": "1024"},
                ],
            }
        },
    )
    queue(executor, item)
    events = pump(executor, lambda ev: any(state == "running" for _, state, _ in ev))
    # The job runs the real Task SDK, which retries the unreachable api-server for minutes: stop it, pass
    # or fail, so it does not load the machine under the tests that follow.
    request_cleanup(lambda: batch_env.client("batch").terminate_job(jobId=events[0][2], reason="test over"))
    [request] = batch_env.submitted_requests()
    assert request["jobQueue"] == batch_env.job_queue
    assert request["jobDefinition"] == batch_env.job_definition
    assert request["jobName"] == job_name(task_identity(item.ti))
    command = request["containerOverrides"]["command"]
    assert command[:4] == ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string"]
    sent = json.loads(command[4])
    assert sent["ti"]["task_id"] == "real"
    if compat.token_generator(executor) is None:  # Airflow 3.1: the scheduler's token is kept
        assert sent["token"] == "workload-token"
    else:  # the executor signs a fresh token for the submission instead of sending the scheduler's
        claims = jwt.decode(sent["token"], options={"verify_signature": False})
        assert claims["sub"] == str(item.ti.id)
        assert claims.get("scope", "workload") == "workload"  # Airflow 3.2.0 signs no scope
    environment = {e["name"]: e["value"] for e in request["containerOverrides"]["environment"]}
    assert environment == {
        "MY_SETTING": "42",
        "AIRFLOW_IS_EXECUTOR_CONTAINER": "true",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://127.0.0.1:9/execution/",
    }
    assert request["containerOverrides"]["resourceRequirements"][1] == {"type": "MEMORY", "value": "1024"}
    submission_tag = request["tags"].pop("airflow.submission")
    assert re.fullmatch(r"[0-9a-f]{12}", submission_tag), "a random id per queueing"
    assert request["tags"] == {
        "airflow.dag_id": "dag",
        "airflow.task_id": "real",
        "airflow.run_id": "run-1",
        "airflow.try_number": "1",
        "airflow.map_index": "-1",
    }
    [(key, state, job_id)] = events
    assert key == item.ti.key and state == "running" and job_id == executor.jobs.tracker.for_key(key).job_id


def test_status_sync_reports_success_and_failure_once(make_executor, batch_env, scripted, status_source):
    executor = make_executor()
    ok, boom = workload("ok"), workload("boom")
    queue(executor, ok, boom)
    events = pump(executor, finished(ok.ti.key, boom.ti.key))
    assert final_states(events) == {ok.ti.key: "success", boom.ti.key: "failed"}
    assert states_of(events, ok.ti.key) == ["running", "success"]
    assert states_of(events, boom.ti.key) == ["running", "failed"]
    failure_info = next(info for key, state, info in events if key == boom.ti.key and state == "failed")
    assert "exit code 3" in failure_info
    assert len(executor.jobs.tracker) == 0 and not executor.running
    logged = [log for log in executor._task_event_logs if log.event == "batch job failed"]
    assert len(logged) == 1 and "exit code 3" in logged[0].extra


def test_airflow_queue_routes_to_another_batch_queue(make_executor, batch_env, scripted):
    executor = make_executor()
    item = workload("ok", queue=batch_env.second_job_queue)
    queue(executor, item)
    pump(executor, finished(item.ti.key))
    [request] = batch_env.submitted_requests()
    assert request["jobQueue"] == batch_env.second_job_queue


def test_throttled_submissions_are_retried_and_submitted_once(make_executor, batch_env, scripted):
    executor = make_executor()
    batch_env.faults.throttle(count=2, operation="SubmitJob")
    item = workload("ok")
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    assert final_states(events) == {item.ti.key: "success"}
    assert len(batch_env.submitted_requests()) == 1
    assert executor.jobs._submitter.limiter.rate < executor.options.submit_rate_limit


def test_submissions_that_keep_failing_fail_the_task_with_the_last_error(make_executor, batch_env, scripted):
    executor = make_executor()
    batch_env.faults.throttle(count=10, operation="SubmitJob")
    item = workload("ok")
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    [(_, state, info)] = [e for e in events if e[0] == item.ti.key]
    assert state == "failed" and "after 3 attempt(s)" in info and "TooManyRequestsException" in info
    [logged] = [log for log in executor._task_event_logs if log.event == "batch job not submitted"]
    assert "TooManyRequestsException" in logged.extra
    assert batch_env.submitted_requests() == []


def test_bad_executor_config_fails_only_that_task(make_executor, batch_env, scripted):
    executor = make_executor()
    bad = workload(
        "ok", run_id="bad", executor_config={"containerOverrides": {"command": ["rm", "-rf", "/"]}}
    )
    good = workload("ok", run_id="good")
    queue(executor, bad, good)
    events = pump(executor, finished(bad.ti.key, good.ti.key))
    assert final_states(events) == {bad.ti.key: "failed", good.ti.key: "success"}
    [logged] = [log for log in executor._task_event_logs if log.event == "batch job not submitted"]
    assert "containerOverrides.command" in logged.extra and "Fix:" in logged.extra
    assert len(batch_env.submitted_requests()) == 1


def callback_event_key(callback):
    """The key of a callback's events: ``ExecuteCallback.key`` is Airflow 3.3's only, and Airflow 3.2's
    scheduler needs the id as a UUID (``compat.scheduler_event_key``)."""
    return compat.scheduler_event_key(callback.callback.key)


def callback_workload(callback_id, data):
    """An ExecuteCallback as the scheduler queues it (skips the test before Airflow 3.2)."""
    callback_module = pytest.importorskip(
        "airflow.executors.workloads.callback", reason="callbacks arrived in Airflow 3.2"
    )
    from airflow.executors.workloads import BundleInfo, ExecuteCallback

    return ExecuteCallback(
        callback=callback_module.CallbackDTO(id=callback_id, fetch_method="import_path", data=data),
        dag_rel_path="dags/x.py",
        bundle_info=BundleInfo(name="dags-folder"),
        log_path=None,
        token="t",
    )


def test_executor_callback_runs_as_a_job(make_executor, batch_env, monkeypatch):
    callback = callback_workload("9b2e7c5e-6a1f-4a59-9d3e-0f4f0d1d2c3b", {"path": "x.y", "dag_id": "dag"})
    monkeypatch.setattr(task_specs_module, "workload_command", lambda w: python_command(SCRIPTS["ok"]))
    executor = make_executor()
    queue(executor, callback)
    key = callback_event_key(callback)
    events = pump(executor, finished(key))
    assert final_states(events)[key] == "success"
    assert not executor.running, "its slot is free again"
    [request] = batch_env.submitted_requests()
    assert request["jobName"].startswith("dag-callback-")
    assert request["tags"]["airflow.callback_id"] == "9b2e7c5e-6a1f-4a59-9d3e-0f4f0d1d2c3b"


def test_a_failed_callbacks_reason_goes_with_its_failure_not_to_a_task_event_log(
    make_executor, batch_env, monkeypatch
):
    callback = callback_workload("5f0c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f", {"path": "x.y"})
    monkeypatch.setattr(task_specs_module, "workload_command", lambda w: python_command(SCRIPTS["boom"]))
    executor = make_executor()
    queue(executor, callback)
    event_key = callback_event_key(callback)
    events = pump(executor, finished(event_key))
    [(state, reason)] = [
        (state, info) for key, state, info in events if key == event_key and state != "running"
    ]
    assert state == "failed" and "exit code 3" in reason
    assert not executor._task_event_logs


def test_new_scheduler_adopts_jobs_by_id_and_by_name(make_executor, batch_env, monkeypatch, status_source):
    # A look-up not answered within ADOPTION_WAIT_SECONDS is adopted provisionally, not handed back:
    # on a loaded machine 5 s can pass before ListJobs answers. The wait ends once all are answered.
    monkeypatch.setattr(job_supervisor, "ADOPTION_WAIT_SECONDS", 60.0)
    monkeypatch.setitem(SCRIPTS, "slow", "import time; time.sleep(1.5)")
    monkeypatch.setattr(
        task_specs_module, "workload_command", lambda w: python_command(SCRIPTS[w.ti.task_id])
    )
    old = make_executor()
    by_id, by_name = workload("slow", run_id="a"), workload("slow", run_id="b")
    queue(old, by_id, by_name)
    events = pump(old, lambda ev: len({key for key, state, _ in ev if state == "running"}) == 2)
    job_of = {key: info for key, _, info in events}
    old._stop(terminate_jobs=False)

    new = make_executor()
    gone = workload("slow", run_id="never-submitted")
    not_adopted = new.try_adopt_task_instances(
        [ti_for(by_id, job_of[by_id.ti.key]), ti_for(by_name, None), ti_for(gone, None)]
    )
    assert [ti.run_id for ti in not_adopted] == ["never-submitted"]
    events = pump(new, finished(by_id.ti.key, by_name.ti.key))
    assert final_states(events) == {by_id.ti.key: "success", by_name.ti.key: "success"}
    assert (by_name.ti.key, "running", job_of[by_name.ti.key]) in events
    assert len(batch_env.submitted_requests()) == 2


def test_revoke_terminates_the_job_and_emits_nothing(make_executor, batch_env, scripted, status_source):
    executor = make_executor()
    item = workload("sleep")
    queue(executor, item)
    events = pump(executor, lambda ev: bool(ev))
    job_id = events[0][2]
    executor.revoke_task(ti=ti_for(item, job_id))
    assert executor.jobs.tracker.for_key(item.ti.key) is None and item.ti.key not in executor.running
    # The local Batch stops the job on its own thread: wait for it, not for a number of heartbeats.
    wait_until(lambda: executor.heartbeat() or describe(batch_env, job_id)["status"] == "FAILED")
    job = describe(batch_env, job_id)
    assert job["status"] == "FAILED" and "task_queued_timeout" in job["statusReason"]
    assert executor.get_event_buffer() == {}


def test_job_missing_from_describe_jobs_is_failed_after_a_few_checks(make_executor, batch_env):
    from airflow_batch_executor.records import TrackedJob
    from airflow_batch_executor.rules.lifecycle import MISSING_JOB_CHECKS

    executor = make_executor()
    key = workload("lost").ti.key
    executor.jobs.tracker.add(
        TrackedJob(
            job_id="00000000-dead-beef-0000-000000000000",
            key=key,
            job_name="lost",
            job_queue=batch_env.job_queue,
            attempt=1,
            submitted_at=0.0,
        )
    )
    executor.running.add(key)
    events = pump(executor, finished(key))
    [(_, state, info)] = events
    assert state == "failed" and f"{MISSING_JOB_CHECKS} consecutive checks" in info
    assert len(executor.jobs.tracker) == 0


def test_terminate_leaves_jobs_running_for_the_next_scheduler(make_executor, batch_env, scripted):
    client = batch_env.client("batch")
    executor = make_executor()
    item = workload("sleep")
    queue(executor, item)
    job_id = pump(executor, lambda ev: bool(ev))[0][2]
    executor.terminate()
    [job] = client.describe_jobs(jobs=[job_id])["jobs"]
    assert job["status"] not in ("FAILED", "SUCCEEDED")
    client.terminate_job(jobId=job_id, reason="test cleanup")


def test_terminate_can_stop_jobs_when_configured(
    make_executor, batch_env, scripted, monkeypatch, request_cleanup
):
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__TERMINATE_JOBS_ON_SHUTDOWN", "True")
    client = batch_env.client("batch")
    executor = make_executor()
    item = workload("sleep")
    queue(executor, item)
    job_id = pump(executor, lambda ev: bool(ev))[0][2]
    request_cleanup(lambda: client.terminate_job(jobId=job_id, reason="test cleanup"))
    executor.terminate()
    # TerminateJob has answered, but the local Batch stops the process on the job's own thread.
    wait_until(lambda: describe(batch_env, job_id)["status"] == "FAILED")
    job = describe(batch_env, job_id)
    assert job["status"] == "FAILED" and "terminate_jobs_on_shutdown" in job["statusReason"]


def test_a_job_that_ends_before_the_scheduler_reads_its_running_event_keeps_its_job_id(
    make_executor, batch_env, scripted
):
    # Airflow's event buffer holds one event per task: an outcome put there before the scheduler read
    # the RUNNING event would replace it, and the try would never get its job id stored.
    executor = make_executor()
    item = workload("ok")
    queue(executor, item)
    executor.heartbeat()
    wait_until(lambda: executor.heartbeat() or not executor.jobs.busy)

    state, job_id = executor.get_event_buffer()[item.ti.key]
    assert str(state) == "running" and describe(batch_env, job_id)["status"] == "SUCCEEDED"
    executor.heartbeat()
    assert {key: str(state) for key, (state, _) in executor.get_event_buffer().items()} == {
        item.ti.key: "success"
    }


def test_end_waits_for_tracked_jobs(make_executor, batch_env, scripted):
    executor = make_executor()
    item = workload("ok")
    queue(executor, item)
    executor.heartbeat()
    executor.end()
    assert len(executor.jobs.tracker) == 0
    assert str(executor.get_event_buffer()[item.ti.key][0]) == "success"


def test_end_during_a_forced_exit_does_not_wait_for_jobs(make_executor, batch_env, scripted):
    """The scheduler's SIGTERM handler raises SystemExit and calls end() from its finally block."""
    client = batch_env.client("batch")
    executor = make_executor()
    item = workload("sleep", run_id="sigterm")
    queue(executor, item)
    job_id = pump(executor, lambda ev: bool(ev))[0][2]
    with pytest.raises(SystemExit):
        try:
            raise SystemExit(0)
        finally:
            executor.end()
    [job] = client.describe_jobs(jobs=[job_id])["jobs"]
    assert job["status"] not in ("FAILED", "SUCCEEDED")
    executor.end()
    client.terminate_job(jobId=job_id, reason="test cleanup")


def test_a_new_try_supersedes_the_lingering_job_of_the_previous_try(
    make_executor, batch_env, monkeypatch, status_source
):
    """Try 1's job may still be winding down when Airflow queues try 2: only try 2 gets events."""
    scripts = {1: SCRIPTS["sleep"], 2: SCRIPTS["ok"]}
    monkeypatch.setattr(
        task_specs_module, "workload_command", lambda w: python_command(scripts[w.ti.try_number])
    )
    executor = make_executor()
    try1 = workload("flaky", run_id="retry", try_number=1)
    queue(executor, try1)
    job1 = pump(executor, lambda ev: bool(ev))[0][2]
    try2 = workload("flaky", run_id="retry", try_number=2)
    queue(executor, try2)
    events = pump(executor, finished(try2.ti.key))
    assert {key.try_number for key, _, _ in events} == {2}
    assert states_of(events, try2.ti.key) == ["running", "success"]
    assert executor.jobs.tracker.get(job1) is None and try1.ti.key not in executor.running
    batch_env.client("batch").terminate_job(jobId=job1, reason="test cleanup")


def test_events_keep_their_order_under_concurrent_submission(
    make_executor, batch_env, scripted, status_source
):
    """Many tasks through 4 submit threads: each gets one running event (its job id), before its end."""
    executor = make_executor()
    items = [workload("ok" if n % 3 else "boom", run_id=f"order-{n}") for n in range(24)]
    queue(executor, *items)
    events = pump(executor, finished(*(item.ti.key for item in items)), timeout=60)
    for item in items:
        outcome = "success" if item.ti.task_id == "ok" else "failed"
        assert states_of(events, item.ti.key) == ["running", outcome]
    job_ids = [info for _, state, info in events if state == "running"]
    assert len(set(job_ids)) == len(items) == len(batch_env.submitted_requests())
