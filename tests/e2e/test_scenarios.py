"""Task outcomes through a real scheduler and the local Batch: one stack, every run at once."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from batch_devtools.devstack import CallbackRow, DevStack, Timing
from tests.e2e.harness import (
    DAGS_FOLDER,
    RELEASE_HELPER,
    Runs,
    airflow_has,
    e2e_stack,
    job_id_of,
    release,
)

pytestmark = pytest.mark.e2e

CALLBACKS = airflow_has("airflow.executors.workloads.callback")
CONNECTION_TESTS = airflow_has("airflow.executors.workloads.connection_test")
SCENARIOS = (
    "e2e_success",
    "e2e_failure",
    "e2e_retry",
    "e2e_mapped",
    "e2e_overrides",
    "e2e_queue",
    *(["e2e_callback", "e2e_callback_failing"] if CALLBACKS else []),
)
CALLBACK_RUNNER = ["python", "-m", "airflow_batch_executor.in_job.callback_runner", "--json-string"]
CALLBACK_RELEASE = "e2e_callbacks"
"""What the deadline DAGs' tasks wait for (``RELEASE`` of dags/scenario_callback.py): both deadlines
pass while their runs are still going, however slowly the machine runs."""


NO_RECONCILIATION = Timing(status_reconcile_interval=3600)
"""With events, no job is described while the module runs: by default a job is described 120 s after
its last event, which a job running under load may reach, and the test would no longer show that
every status came from an event."""


@pytest.fixture(scope="module", params=["polling", "events"])
def runs(request: pytest.FixtureRequest) -> Iterator[Runs]:
    """Each scenario with job status from DescribeJobs polling, then from state-change events."""
    events = request.param == "events"
    with e2e_stack(
        DAGS_FOLDER,
        dag_files=("scenario_*.py", "e2e_callback_alerts.py", RELEASE_HELPER),
        status_events=events,
        timing=NO_RECONCILIATION if events else None,
    ) as stack:
        yield Runs(stack, SCENARIOS)


def test_success(runs: Runs) -> None:
    run = runs.finish("e2e_success")

    assert run.state == "success"
    assert run.states() == {("produce", -1): "success", ("double", -1): "success"}
    assert all(ti.try_number == 1 and ti.external_executor_id for ti in run.task_instances.values())
    assert run.submissions_per_try() == {("produce", -1, 1): 1, ("double", -1, 1): 1}


def test_failure_fails_the_task_and_skips_downstream(runs: Runs) -> None:
    run = runs.finish("e2e_failure")

    assert run.state == "failed"
    assert run.states() == {("broken", -1): "failed", ("after", -1): "upstream_failed"}
    assert run.submissions_per_try() == {("broken", -1, 1): 1}


def test_retry_after_failure_runs_a_second_job(runs: Runs) -> None:
    run = runs.finish("e2e_retry")

    flaky = run.task_instances[("flaky", -1)]
    assert (run.state, flaky.state, flaky.try_number) == ("success", "success", 2)
    assert run.submissions_per_try() == {("flaky", -1, 1): 1, ("flaky", -1, 2): 1}
    first, second = run.submission("flaky", 1), run.submission("flaky", 2)
    assert "-try1-" in first["jobName"] and "-try2-" in second["jobName"]
    assert flaky.external_executor_id == job_id_of(runs.stack, second["jobName"]), (
        "the task instance points at its try-2 job"
    )


def test_mapped_tasks_each_get_one_job(runs: Runs) -> None:
    run = runs.finish("e2e_mapped")

    assert run.state == "success"
    squares = {key: state for key, state in run.states().items() if key[0] == "square"}
    assert squares == {("square", index): "success" for index in range(6)}
    job_ids = {ti.external_executor_id for ti in run.task_instances.values()}
    assert len(job_ids) == len(run.task_instances) == 8
    assert run.submissions_per_try() == {
        ("items", -1, 1): 1,
        ("total", -1, 1): 1,
        **{("square", index, 1): 1 for index in range(6)},
    }


def test_executor_config_overrides_reach_the_job(runs: Runs) -> None:
    run = runs.finish("e2e_overrides")

    assert run.state == "success", "the task checks E2E_GREETING inside its job"
    overrides = run.submission("configured")["containerOverrides"]
    assert {"name": "E2E_GREETING", "value": "hello from executor_config"} in overrides["environment"]
    assert overrides["resourceRequirements"] == [
        {"type": "VCPU", "value": "0.5"},
        {"type": "MEMORY", "value": "2048"},
    ]


def test_task_queue_routes_to_the_second_batch_queue(runs: Runs) -> None:
    run = runs.finish("e2e_queue")

    assert run.state == "success", "the task checks AWS_BATCH_JQ_NAME inside its job"
    assert run.submission("routed")["jobQueue"] == runs.stack.environment.second_job_queue
    assert run.task_instances[("routed", -1)].queue == runs.stack.environment.second_job_queue


def callbacks_ended(stack: DevStack, ids: list[str], timeout: float = 60.0) -> dict[str, CallbackRow]:
    """The callbacks once the scheduler has recorded an outcome for each."""
    deadline = time.monotonic() + timeout
    while (rows := stack.metadata.callbacks(ids)) and not all(
        row.state in ("success", "failed") for row in rows.values()
    ):
        assert time.monotonic() < deadline, f"callbacks still running after {timeout}s: {rows}"
        time.sleep(0.5)
    assert len(rows) == len(ids), f"callbacks {ids} are not all in the database: {rows}"
    return rows


def callback_jobs(stack: DevStack, dag_id: str) -> list[dict[str, Any]]:
    """The SubmitJob requests of a DAG's deadline callbacks."""
    return [
        request
        for request in stack.submitted_requests()
        if request["tags"].get("airflow.dag_id") == dag_id and "airflow.callback_id" in request["tags"]
    ]


def callback_jobs_of(
    stack: DevStack, dag_ids: list[str], timeout: float = 120.0
) -> list[list[dict[str, Any]]]:
    """The callback jobs of each DAG, once every one of them has some."""
    deadline = time.monotonic() + timeout
    while not all(found := [callback_jobs(stack, dag_id) for dag_id in dag_ids]):
        missing = [dag_id for dag_id, jobs in zip(dag_ids, found, strict=True) if not jobs]
        assert time.monotonic() < deadline, f"no deadline callback job for {missing} after {timeout}s"
        time.sleep(0.5)
    return found


@pytest.mark.skipif(not CALLBACKS, reason="Airflow hands deadline callbacks to executors since 3.2")
def test_deadline_callbacks_run_as_batch_jobs_and_report_their_outcome(runs: Runs) -> None:
    try:
        [recorded_job], [failing_job] = callback_jobs_of(runs.stack, ["e2e_callback", "e2e_callback_failing"])
        ids = [job["tags"]["airflow.callback_id"] for job in (recorded_job, failing_job)]
        rows = callbacks_ended(runs.stack, ids)
    finally:
        release(runs.stack, CALLBACK_RELEASE)
    recorded_run, failing_run = runs.finish("e2e_callback"), runs.finish("e2e_callback_failing")
    assert (recorded_run.state, failing_run.state) == ("success", "success"), "a missed deadline fails no run"
    assert recorded_job["containerOverrides"]["command"][:4] == CALLBACK_RUNNER
    assert callback_jobs(runs.stack, "e2e_callback") == [recorded_job], "one callback job per missed deadline"
    recorded, failed = rows[str(uuid.UUID(ids[0]))], rows[str(uuid.UUID(ids[1]))]
    assert recorded.state == "success"
    mark = runs.stack.stack_dir / "airflow-home" / "e2e-callbacks" / recorded_run.run_id.replace(":", "_")
    assert mark.read_text() == "deadline missed", "the callback itself ran inside its job"
    assert failed.state == "failed" and "exit code 1" in (failed.output or ""), failed


def test_job_status_comes_from_events_when_a_status_queue_is_set(runs: Runs) -> None:
    release(runs.stack, CALLBACK_RELEASE)  # the deadline DAGs' runs end only once released
    for dag_id in SCENARIOS:
        assert runs.finish(dag_id).state in ("success", "failed")
    calls = runs.stack.batch.calls()
    if runs.stack.status_events:
        assert calls.get("describejobs", 0) == 0, "every status came from an event"
        assert calls["receivemessage"] > 0 and calls["deletemessagebatch"] > 0
    else:
        assert calls["describejobs"] > 0 and "receivemessage" not in calls


@pytest.mark.skipif(not CONNECTION_TESTS, reason="Airflow runs connection tests on executors since 3.3")
def test_connection_tests_run_in_batch_jobs_and_report_their_outcome(runs: Runs) -> None:
    stack = runs.stack
    release(stack, CALLBACK_RELEASE)  # the deadline DAGs' runs end only once released
    for dag_id in SCENARIOS:  # SQLite takes one writer at a time: let the runs' writes settle first
        runs.finish(dag_id)
    secret = "only-the-execution-api-may-hand-this-out"

    def aws(connection_id: str, endpoint_url: str) -> dict[str, str]:
        """An AWS connection; its test calls STS GetCallerIdentity at ``endpoint_url`` from the job."""
        extra = {
            "region_name": stack.environment.region,
            "service_config": {"sts": {"endpoint_url": endpoint_url}},
        }
        return {
            "connection_id": connection_id,
            "conn_type": "aws",
            "login": "AKIAEXAMPLE",
            "password": secret,
            "extra": json.dumps(extra),
        }

    good = stack.test_connection(aws("e2e_reachable", stack.environment.endpoint_url))
    bad = stack.test_connection(aws("e2e_unreachable", "http://127.0.0.1:9"))
    stack.batch.add_fault("fail_before_start", pattern="connection-test-e2e_no_image-*", permanent=True)
    never_ran = stack.test_connection(aws("e2e_no_image", stack.environment.endpoint_url))

    assert good["state"] == "success", good
    assert bad["state"] == "failed" and "127.0.0.1:9" in (bad["result_message"] or ""), bad
    assert never_ran["state"] == "failed", never_ran
    assert "CannotPullContainerError" in (never_ran["result_message"] or ""), "the Batch reason, at once"
    jobs = [r for r in stack.submitted_requests() if "airflow.connection_id" in r["tags"]]
    assert sorted(job["tags"]["airflow.connection_id"] for job in jobs) == [
        "e2e_no_image",
        "e2e_reachable",
        "e2e_unreachable",
    ]
    assert not [job for job in jobs if secret in json.dumps(job)], "the password stays in Airflow"
