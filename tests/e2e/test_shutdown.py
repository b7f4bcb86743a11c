"""A scheduler stopped with SIGTERM while its tasks' Batch jobs run.

It must exit promptly (the executor's ``end()`` does not wait for jobs on a forced exit), leave
the jobs running (``terminate_jobs_on_shutdown`` is off by default), and the next scheduler must
adopt them: every task ends success with exactly one job per try.
"""

from __future__ import annotations

import signal
import time
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

DAG_ID = "e2e_shutdown"
SLEEPERS = [("sleeper", 0), ("sleeper", 1), ("sleeper", 2)]
SIGTERM_EXIT_SECONDS = 25.0
"""An exit that does not wait for the jobs: they wait for the test's release, so a scheduler waiting for
them would not exit at all. The rest is Airflow's own shutdown, which a loaded 2-core CI machine can
slow past 10 s; ``kill_scheduler`` gives it 20 s more before calling it hung."""


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    with e2e_stack(DAGS_FOLDER, dag_files=["shutdown.py", RELEASE_HELPER]) as stack:
        yield stack


def test_sigterm_leaves_jobs_running_for_the_next_scheduler(stack: DevStack) -> None:
    run_id = stack.trigger(DAG_ID)
    job_ids = wait_until_running(stack, DAG_ID, run_id, SLEEPERS)

    began = time.monotonic()
    code = stack.kill_scheduler(signal.SIGTERM, timeout=SIGTERM_EXIT_SECONDS + 20)
    exit_seconds = time.monotonic() - began
    print(f"scheduler-1 exited {exit_seconds:.1f}s after SIGTERM with code {code}")
    assert exit_seconds < SIGTERM_EXIT_SECONDS, f"the scheduler took {exit_seconds:.1f}s to exit on SIGTERM"
    assert code == 0, f"the scheduler exited with {code} on SIGTERM"
    jobs = stack.describe_jobs(job_ids.values())
    assert {job_id: job["status"] for job_id, job in jobs.items()} == {
        job_id: "RUNNING" for job_id in job_ids.values()
    }, "SIGTERM must not terminate the jobs"
    old_log = stack.component_log("scheduler-1")
    assert "not waiting for Batch jobs" in old_log
    assert "3 Batch job(s) keep running for the next scheduler" in old_log

    stack.start_scheduler()
    # The sleepers run until scheduler-2 has adopted all three: a job ending first would leave its task
    # nothing to adopt, however the scheduler behaved.
    wait_until_adopted(stack, "scheduler-2", len(SLEEPERS))
    release(stack, DAG_ID)
    run = finished_run(stack, DAG_ID, run_id)

    assert run.state == "success"
    assert run.states() == {key: "success" for key in SLEEPERS}
    assert {key: ti.try_number for key, ti in run.task_instances.items()} == {key: 1 for key in SLEEPERS}
    assert {key: ti.external_executor_id for key, ti in run.task_instances.items()} == job_ids
    assert run.submissions_per_try() == {(task_id, index, 1): 1 for task_id, index in SLEEPERS}
    ended = stack.wait_for_jobs(job_ids.values())
    assert all(job["status"] == "SUCCEEDED" for job in ended.values())
    assert adopted(stack, "scheduler-2") == len(SLEEPERS), "each adopted once"
