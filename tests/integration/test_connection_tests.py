"""Connection tests (Airflow 3.3's ``TestConnection`` workloads) as Batch jobs, through the local Batch.

The test itself reports its outcome through the execution API from inside the job, as under
Airflow's own executors; what the executor adds is shown here: the job (name, tags, queue, time
limit), and a reason in the test's row when the job never ran the test.
"""

from __future__ import annotations

import time
import uuid

import pytest

from airflow_batch_executor.requests import task_specs as task_specs_module

from .helpers import final_states, finished, pump, python_command, queue

connection_test = pytest.importorskip(
    "airflow.executors.workloads.connection_test",
    reason="connection tests run on executors since Airflow 3.3",
)
SLEEP = python_command("import time; time.sleep(60)")


@pytest.fixture
def requests_table():
    """The metadata table the scheduler and the API server keep connection tests in."""
    from airflow import settings
    from airflow.models.connection_test import ConnectionTestRequest

    ConnectionTestRequest.__table__.create(settings.engine, checkfirst=True)
    return ConnectionTestRequest


def a_test(requests_table, connection_id: str = "warehouse", queue_name: str | None = None):
    """A pending test request in the metadata database and the workload the scheduler makes of it."""
    from airflow.utils.session import create_session

    with create_session() as session:
        row = requests_table(connection_id=connection_id, conn_type="postgres", host="db.internal")
        row.state = "queued"
        session.add(row)
        session.flush()
        test_id = row.id
    workload = connection_test.TestConnection(
        connection_test_id=test_id, connection_id=connection_id, timeout=30, queue=queue_name, token="t"
    )
    return test_id, workload


def row_of(requests_table, test_id: uuid.UUID):
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.get(requests_table, test_id)
        return row.state, row.result_message


def test_a_connection_test_runs_as_a_job_routed_and_limited_like_a_task(
    make_executor, batch_env, requests_table, monkeypatch
):
    monkeypatch.setattr(task_specs_module, "workload_command", lambda w: python_command("print('tested')"))
    executor = make_executor()
    assert executor.supports_connection_test
    test_id, workload = a_test(requests_table, "warehouse.pg", queue_name=batch_env.second_job_queue)
    queue(executor, workload)
    events = pump(executor, finished(workload.key))

    assert final_states(events) == {workload.key: "success"}
    [request] = batch_env.submitted_requests()
    assert request["jobName"].startswith("connection-test-warehouse_pg-")
    assert request["tags"].pop("airflow.submission")
    assert request["tags"] == {
        "airflow.connection_id": "warehouse.pg",
        "airflow.connection_test_id": str(test_id),
    }
    assert request["jobQueue"] == batch_env.second_job_queue, "the test goes where the connection is used"
    assert request["timeout"] == {"attemptDurationSeconds": 30 + 120}
    assert row_of(requests_table, test_id)[0] == "queued", (
        "the test reports its own outcome, not the executor"
    )
    assert not executor._task_event_logs, "a connection test has no task event log"


def test_a_job_that_never_ran_the_test_fails_it_with_the_batch_reason(
    make_executor, batch_env, requests_table
):
    batch_env.faults.fail_before_start("connection-test-*", count=1, permanent=True)
    executor = make_executor()
    test_id, workload = a_test(requests_table, "broken_image")
    queue(executor, workload)
    events = pump(executor, finished(workload.key))

    assert final_states(events) == {workload.key: "failed"}
    state, message = row_of(requests_table, test_id)
    assert state == "failed"
    assert "CannotPullContainerError" in message and "not found" in message


def test_an_outcome_the_test_reported_itself_is_kept(make_executor, batch_env, requests_table, monkeypatch):
    from airflow.utils.session import create_session

    monkeypatch.setattr(
        task_specs_module, "workload_command", lambda w: python_command("raise SystemExit(3)")
    )
    executor = make_executor()
    test_id, workload = a_test(requests_table, "reported")
    with create_session() as session:
        row = session.get(requests_table, test_id)
        row.state, row.result_message = "success", "Connection successfully tested"
    queue(executor, workload)
    pump(executor, finished(workload.key))
    assert row_of(requests_table, test_id) == ("success", "Connection successfully tested")


def test_a_test_the_scheduler_reaps_has_its_job_terminated(
    make_executor, batch_env, requests_table, monkeypatch
):
    monkeypatch.setattr(task_specs_module, "workload_command", lambda w: SLEEP)
    executor = make_executor()
    _, workload = a_test(requests_table, "slow")
    queue(executor, workload)
    [(_, _, job_id)] = pump(executor, lambda events: events)
    executor.fail_connection_test(workload.key)
    assert workload.key not in executor.running

    client = batch_env.client("batch")
    deadline = time.monotonic() + 15
    while (job := client.describe_jobs(jobs=[job_id])["jobs"][0])["status"] != "FAILED":
        assert time.monotonic() < deadline, f"job {job_id} is still {job['status']}"
        executor.heartbeat()
        time.sleep(0.1)
    assert "connection test ran out of time" in job["statusReason"]
