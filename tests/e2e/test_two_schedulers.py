"""Two schedulers at once on PostgreSQL (row-level locking): every task runs exactly once."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from batch_devtools.devstack import DevStack
from batch_devtools.devstack.database import postgres_reachable
from tests.e2e.harness import DAGS_FOLDER, Runs

pytestmark = pytest.mark.e2e

DAG_ID = "e2e_two_schedulers"
WIDTH = 12


@pytest.fixture(scope="module")
def runs() -> Iterator[Runs]:
    problem = postgres_reachable()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{problem}; CI must run this test, so start PostgreSQL on 127.0.0.1:5432")
        pytest.skip(problem)
    with DevStack(DAGS_FOLDER, database="postgres", schedulers=2) as stack:
        yield Runs(stack, [DAG_ID])


def test_two_schedulers_run_every_task_exactly_once(runs: Runs) -> None:
    run = runs.finish(DAG_ID)

    expected = {("work", index): "success" for index in range(WIDTH)} | {("single", -1): "success"}
    assert (run.state, run.states()) == ("success", expected)
    assert all(ti.try_number == 1 for ti in run.task_instances.values())
    assert run.submissions_per_try() == {(task_id, index, 1): 1 for task_id, index in expected}
    job_names = [request["jobName"] for request in run.submissions]
    batch_jobs = [job for job in runs.stack.batch.jobs() if job["jobName"] in set(job_names)]
    assert len(batch_jobs) == len(expected), "Batch holds exactly one job per task instance"
    assert runs.stack.live_schedulers() == 2, "both schedulers stayed up for the whole run"
