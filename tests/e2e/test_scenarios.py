"""Task outcomes through a real scheduler and the local Batch: one stack, every run at once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from batch_devtools.devstack import DevStack
from tests.e2e.harness import DAGS_FOLDER, Runs, job_id_of

pytestmark = pytest.mark.e2e

SCENARIOS = ("e2e_success", "e2e_failure", "e2e_retry", "e2e_mapped", "e2e_overrides", "e2e_queue")


@pytest.fixture(scope="module", params=["polling", "events"])
def runs(request: pytest.FixtureRequest) -> Iterator[Runs]:
    """Each scenario with job status from DescribeJobs polling, then from state-change events."""
    with DevStack(DAGS_FOLDER, status_events=request.param == "events") as stack:
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


def test_job_status_comes_from_events_when_a_status_queue_is_set(runs: Runs) -> None:
    for dag_id in SCENARIOS:
        assert runs.finish(dag_id).state in ("success", "failed")
    calls = runs.stack.batch.calls()
    if runs.stack.status_events:
        assert calls.get("describejobs", 0) == 0, "every status came from an event"
        assert calls["receivemessage"] > 0 and calls["deletemessagebatch"] > 0
    else:
        assert calls["describejobs"] > 0 and "receivemessage" not in calls
