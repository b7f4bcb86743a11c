"""The operator's tools on a real stack: live task logs through Airflow's REST API, and the
``airflow aws-batch-executor render`` and ``jobs`` commands run as the operator would run them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.e2e.harness import (
    DAGS_FOLDER,
    RELEASE_HELPER,
    Runs,
    e2e_stack,
    log_events,
    release,
    wait_until_running,
)

pytestmark = pytest.mark.e2e

LIVE_DAG = "e2e_live_logs"
TIMEOUT_DAG = "e2e_timeout"
RENDER_DAG = "e2e_render"
LIVE_LINES = [f"e2e live log line {n}" for n in range(1, 4)]
"""What ``chatty`` logs before it waits for the test to release it (dags/operator_tools.py)."""
LIVE_LOG_WAIT_SECONDS = 90.0


@pytest.fixture(scope="module")
def runs() -> Iterator[Runs]:
    with e2e_stack(DAGS_FOLDER, dag_files=["operator_tools.py", RELEASE_HELPER]) as stack:
        yield Runs(stack, [LIVE_DAG, TIMEOUT_DAG])


def test_live_log_of_a_running_task_is_served_from_its_batch_job(runs: Runs) -> None:
    stack, run_id = runs.stack, runs.run_ids[LIVE_DAG]
    try:
        job_id = wait_until_running(stack, LIVE_DAG, run_id, [("chatty", -1)])[("chatty", -1)]
        deadline = time.monotonic() + LIVE_LOG_WAIT_SECONDS
        events: list[str] = []
        while True:
            try:
                events = log_events(stack.api.task_log(LIVE_DAG, run_id, "chatty", 1))
            except (OSError, ValueError) as error:
                # The one API server worker also serves every job's calls: a slow or failed answer under
                # load is asked again, not a failure.
                print(f"reading the live log: {error}")
            if all(any(line in event for event in events) for line in LIVE_LINES):
                break
            state = stack.task_states(LIVE_DAG, run_id).get(("chatty", -1))
            assert state not in ("success", "failed"), (
                f"chatty ended ({state}) before its lines showed up in its live log: {events}"
            )
            assert time.monotonic() < deadline, (
                f"the live log never showed {LIVE_LINES} while chatty ran: {events}"
            )
            time.sleep(1)

        still_running = stack.task_states(LIVE_DAG, run_id)[("chatty", -1)]
        assert still_running == "running", "the log was read while the task ran"
        stream = f"/aws/batch/job/{stack.environment.job_definition}/default/{job_id}"
        sources = [event for event in events if f"AWS Batch job {job_id}" in event]
        assert sources and stream in sources[0], (
            f"no source naming job {job_id} and stream {stream}: {events}"
        )
    finally:
        # Also when an assertion failed: nothing else lets chatty end.
        release(stack, LIVE_DAG)
    assert runs.finish(LIVE_DAG).state == "success"


def test_render_prints_the_request_with_overrides_routing_and_timeout(runs: Runs) -> None:
    stack = runs.stack
    stack.wait_for_dags([RENDER_DAG])

    result = stack.airflow_cli("aws-batch-executor", "render", RENDER_DAG, "configured")

    assert result.returncode == 0, result.stdout + result.stderr
    request = json.loads(result.stdout[result.stdout.index("{") :])
    overrides = request["containerOverrides"]
    assert {"name": "E2E_RENDERED", "value": "from executor_config"} in overrides["environment"]
    assert overrides["resourceRequirements"] == [
        {"type": "VCPU", "value": "1"},
        {"type": "MEMORY", "value": "4096"},
    ]
    assert request["jobQueue"] == stack.environment.second_job_queue, "the task's queue routes the job"
    assert request["timeout"] == {"attemptDurationSeconds": 10 * 60 + 120}, "execution_timeout + 120 s"
    assert request["jobName"].startswith(f"{RENDER_DAG}-configured-try1-")
    assert request["tags"]["airflow.task_id"] == "configured"
    assert "eyJ" not in result.stdout, "the workload token is never printed"


def test_render_refuses_an_invalid_fargate_size(runs: Runs) -> None:
    stack = runs.stack
    stack.wait_for_dags([RENDER_DAG])

    result = stack.airflow_cli("aws-batch-executor", "render", RENDER_DAG, "badly_sized")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "not a valid Fargate size" in result.stdout, result.stdout + result.stderr


def test_execution_timeout_becomes_the_job_attempt_duration(runs: Runs) -> None:
    run = runs.finish(TIMEOUT_DAG)

    assert run.state == "success"
    assert run.submission("bounded")["timeout"] == {"attemptDurationSeconds": 420}


def test_jobs_lists_the_dags_batch_jobs(runs: Runs) -> None:
    run = runs.finish(TIMEOUT_DAG)
    job_id = run.task_instances[("bounded", -1)].external_executor_id
    assert job_id

    result = runs.stack.airflow_cli("aws-batch-executor", "jobs", "--dag-id", TIMEOUT_DAG)

    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(job_id)]
    assert len(rows) == 1, result.stdout
    assert "SUCCEEDED" in rows[0] and "bounded" in rows[0] and run.run_id in rows[0]
    assert LIVE_DAG not in result.stdout, "only the asked DAG's jobs are listed"
    assert "1 job(s) in " in result.stdout
