"""A scheduler SIGKILLed while its tasks' Batch jobs run: the next scheduler adopts the jobs.

The jobs must run to their own end (no second job for any try) and every task must end in the
state its job ended in.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from batch_devtools.devstack import DevStack
from tests.e2e.harness import (
    DAGS_FOLDER,
    RELEASE_HELPER,
    adopted,
    e2e_stack,
    finished_run,
    release,
    wait_until_adopted,
    wait_until_running,
)

pytestmark = pytest.mark.e2e

DAG_ID = "e2e_adoption"
SLEEPERS = [("sleeper", 0), ("sleeper", 1), ("sleeper", 2), ("failing_sleeper", -1)]


@pytest.fixture(scope="module", params=["polling", "events"])
def stack(request: pytest.FixtureRequest) -> Iterator[DevStack]:
    """Job status from DescribeJobs polling, then from state-change events (adopted jobs reconciled)."""
    events = request.param == "events"
    with e2e_stack(DAGS_FOLDER, dag_files=["adoption.py", RELEASE_HELPER], status_events=events) as stack:
        yield stack


def test_killed_scheduler_jobs_are_adopted_not_rerun(stack: DevStack) -> None:
    run_id = stack.trigger(DAG_ID)
    job_ids = wait_until_running(stack, DAG_ID, run_id, SLEEPERS)

    stack.kill_scheduler(signal.SIGKILL)
    stack.start_scheduler()
    # The tasks run until scheduler-2 has adopted all four, which waits for the killed scheduler's
    # heartbeat to go stale: a job ending first would leave its task nothing to adopt.
    wait_until_adopted(stack, "scheduler-2", len(SLEEPERS))
    release(stack, DAG_ID)
    run = finished_run(stack, DAG_ID, run_id)

    assert run.states() == {
        ("sleeper", 0): "success",
        ("sleeper", 1): "success",
        ("sleeper", 2): "success",
        ("failing_sleeper", -1): "failed",
    }
    assert {key: ti.try_number for key, ti in run.task_instances.items()} == {key: 1 for key in SLEEPERS}
    assert {key: ti.external_executor_id for key, ti in run.task_instances.items()} == job_ids
    assert run.submissions_per_try() == {(task_id, index, 1): 1 for task_id, index in SLEEPERS}
    assert adopted(stack, "scheduler-2") == len(SLEEPERS), "each adopted once"
