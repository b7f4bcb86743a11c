"""Every retry path of the executor, with faults injected at the botocore layer (issue: failure handling)."""

from __future__ import annotations

import time

import pytest

from airflow_batch_executor.requests import task_specs as task_specs_module

from ..botocore_faults import BotocoreFaults
from ..helpers import final_states, finished, pump, python_command, queue, workload

OK = python_command("print('ok')")


@pytest.fixture
def faults(monkeypatch) -> BotocoreFaults:
    monkeypatch.setattr(task_specs_module, "workload_command", lambda w: OK)
    return BotocoreFaults().install(monkeypatch)


def submitted_names(batch_env) -> list[str]:
    return [request["jobName"] for request in batch_env.submitted_requests()]


@pytest.mark.parametrize(
    "fault",
    ["throttle", "server_error", "unavailable", "connection_error", "read_timeout", "expired_credentials"],
)
def test_submit_faults_are_retried_and_the_task_runs_once(make_executor, batch_env, faults, fault):
    executor = make_executor()
    faults.inject("SubmitJob", fault, count=2)
    item = workload("ok", run_id=f"submit-{fault}")
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    assert final_states(events) == {item.ti.key: "success"}
    assert faults.injected.count(("SubmitJob", fault)) == 2
    assert len(submitted_names(batch_env)) == 1


def test_expired_credentials_rebuild_the_clients(make_executor, batch_env, faults):
    executor = make_executor()
    before = faults.clients_built
    faults.inject("SubmitJob", "expired_credentials", count=1)
    item = workload("ok", run_id="creds")
    queue(executor, item)
    pump(executor, finished(item.ti.key))
    assert faults.clients_built > before


def test_lost_submit_response_does_not_create_a_second_job(make_executor, batch_env, faults):
    executor = make_executor()
    faults.lose_response("SubmitJob", count=1)
    item = workload("ok", run_id="lost-response")
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    assert final_states(events) == {item.ti.key: "success"}
    assert ("SubmitJob", "after-call") in faults.injected
    assert len(submitted_names(batch_env)) == 1


@pytest.mark.parametrize(
    "fault", ["throttle", "server_error", "read_timeout", "connection_error", "expired_credentials"]
)
def test_describe_faults_never_break_sync_and_jobs_keep_being_tracked(
    make_executor, batch_env, faults, fault
):
    executor = make_executor()
    item = workload("ok", run_id=f"describe-{fault}")
    queue(executor, item)
    pump(executor, lambda ev: bool(ev))
    faults.inject("DescribeJobs", fault, count=12)
    events = pump(executor, finished(item.ti.key), timeout=60)
    assert final_states(events) == {item.ti.key: "success"}
    assert ("DescribeJobs", fault) in faults.injected


def test_duplicate_and_unknown_records_are_handled(make_executor, batch_env, faults, caplog):
    executor = make_executor()
    item = workload("ok", run_id="odd-answers")
    queue(executor, item)
    pump(executor, lambda ev: bool(ev))

    def duplicate(parsed):
        parsed["jobs"] = parsed["jobs"] * 2

    def unknown(parsed):
        for job in parsed["jobs"]:
            job["status"] = "HIBERNATING"

    # Unknown statuses first: they keep the job unfinished, so the duplicated answers that follow are
    # still asked for however fast the job runs.
    faults.rewrite("DescribeJobs", unknown, count=2)
    faults.rewrite("DescribeJobs", duplicate, count=2)
    events = pump(executor, finished(item.ti.key))
    assert faults.injected.count(("DescribeJobs", "after-call")) >= 3
    assert final_states(events) == {item.ti.key: "success"}
    assert [state for key, state, _ in events if key == item.ti.key].count("success") == 1
    assert "reported 'HIBERNATING', which this executor does not know" in caplog.text


def test_routing_to_a_queue_that_does_not_exist_fails_at_once(make_executor, batch_env, faults):
    executor = make_executor()
    item = workload("ok", run_id="no-queue", queue="no-such-batch-queue")
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    [(_, state, info)] = [e for e in events if e[0] == item.ti.key]
    assert state == "failed"
    assert "not submitted (attempt 1)" in info and "'no-such-batch-queue' does not exist" in info


def test_terminating_finished_or_unknown_jobs_is_harmless(make_executor, batch_env, faults):
    executor = make_executor()
    item = workload("ok", run_id="done")
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    job_id = next(info for _, state, info in events if state == "running")
    executor.gateway.terminate_job(job_id, "already finished")
    executor.gateway.terminate_job("00000000-0000-0000-0000-000000000000", "never existed")
    [job] = batch_env.client("batch").describe_jobs(jobs=[job_id])["jobs"]
    assert job["status"] == "SUCCEEDED"


def test_an_error_handling_one_result_fails_only_that_task_and_stops_its_job(
    make_executor, batch_env, faults, monkeypatch
):
    from airflow_batch_executor.rules import lifecycle

    batch_env.faults.stuck_in_runnable(pattern="dag-waiting-*")
    executor = make_executor()
    broken, fine = workload("waiting", run_id="broken"), workload("ok", run_id="fine")
    real_classify = lifecycle.classify

    def classify(record):
        if "broken" in str(record.get("tags", {}).get("airflow.run_id")):
            raise KeyError("surprise")
        return real_classify(record)

    monkeypatch.setattr(lifecycle, "classify", classify)
    queue(executor, broken, fine)
    events = pump(executor, finished(broken.ti.key, fine.ti.key))
    assert final_states(events) == {broken.ti.key: "failed", fine.ti.key: "success"}
    reason = next(i for k, s, i in events if k == broken.ti.key and s == "failed")
    assert "could not track this task (KeyError('surprise'))" in reason and "stopped its Batch job" in reason
    job_id = next(i for k, s, i in events if k == broken.ti.key and s == "running")
    client = batch_env.client("batch")
    deadline = time.monotonic() + 30
    while (job := client.describe_jobs(jobs=[job_id])["jobs"][0])["status"] != "FAILED":
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert job["statusReason"].startswith("Stopped by the Airflow scheduler: the AWS Batch executor could")


def test_an_unexpected_error_preparing_a_job_fails_only_that_task(
    make_executor, batch_env, faults, monkeypatch
):
    from airflow_batch_executor import executor as executor_module

    executor = make_executor()
    broken, fine = workload("ok", run_id="unbuildable"), workload("ok", run_id="buildable")
    real_spec = executor_module.workload_spec
    monkeypatch.setattr(
        executor_module,
        "workload_spec",
        lambda w, timeouts: (
            (_ for _ in ()).throw(TypeError("odd"))
            if w.ti.run_id == "unbuildable"
            else real_spec(w, timeouts)
        ),
    )
    queue(executor, broken, fine)
    events = pump(executor, finished(broken.ti.key, fine.ti.key))
    assert final_states(events) == {broken.ti.key: "failed", fine.ti.key: "success"}
