"""A scheduler SIGKILLed while its tasks' Batch jobs run: the next scheduler adopts the jobs.

The jobs must run to their own end (no second job for any try) and every task must end in the
state its job ended in.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator

import pytest

from batch_devtools.devstack import DevStack
from tests.e2e.harness import DAGS_FOLDER, finished_run, wait_until_running

pytestmark = pytest.mark.e2e

DAG_ID = "e2e_adoption"
SLEEPERS = [("sleeper", 0), ("sleeper", 1), ("sleeper", 2), ("failing_sleeper", -1)]


@pytest.fixture(scope="module", params=["polling", "events"])
def stack(request: pytest.FixtureRequest) -> Iterator[DevStack]:
    """Job status from DescribeJobs polling, then from state-change events (adopted jobs reconciled)."""
    with DevStack(DAGS_FOLDER, dag_files=["adoption.py"], status_events=request.param == "events") as stack:
        yield stack


def test_killed_scheduler_jobs_are_adopted_not_rerun(stack: DevStack) -> None:
    run_id = stack.trigger(DAG_ID)
    job_ids = wait_until_running(stack, DAG_ID, run_id, SLEEPERS)

    stack.kill_scheduler(signal.SIGKILL)
    stack.start_scheduler()
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
    adopted = re.findall(
        r"Adopted (\d+) task instance\(s\) with Batch jobs", stack.component_log("scheduler-2")
    )
    assert sum(map(int, adopted)) == len(SLEEPERS)
