"""The ``queue_fallbacks`` ladder through a real scheduler: Spot reclaims try 1's job on the stack's
(Spot) job queue, and Airflow's retry, try 2, is submitted to the fallback (On-Demand) queue.

The local Batch's ``host_terminated`` fault fails try 1's job after its container started, with EC2
Spot's ``Host EC2 (instance …) terminated.`` reason: the try fails and Airflow retries it. The
executor counts that reclaim from try 1's job name (ListJobs on each queue of the ladder) when it
submits try 2.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from batch_devtools.devstack import Timing
from batch_devtools.local_batch.environment import JOB_QUEUE, SECOND_JOB_QUEUE
from batch_devtools.local_batch.faults import HOST_TERMINATED_REASON
from tests.e2e.harness import DAGS_FOLDER, FinishedRun, Runs, e2e_stack

pytestmark = pytest.mark.e2e

DAG_ID = "e2e_spot_fallback"
TASK_ID = "reclaimable"
INSTANCE = "i-0123456789abcdef0"
"""The instance ``HOST_TERMINATED_REASON`` names."""
RECLAIMED, FALLBACK = "batch job reclaimed", "batch job fallback"
EVENTS_TIMEOUT = 30.0
TIMING = Timing(
    extra={
        # The queue names are the local Batch's constants: the stack's settings exist before it does.
        "AIRFLOW__AWS_BATCH_EXECUTOR__QUEUE_FALLBACKS": json.dumps(
            {JOB_QUEUE: {"fallback": SECOND_JOB_QUEUE, "after_reclaims": 1}}
        ),
    }
)


@pytest.fixture(scope="module")
def runs() -> Iterator[Runs]:
    with e2e_stack(DAGS_FOLDER, dag_files=["spot_fallback.py"], timing=TIMING) as stack:
        stack.batch.add_fault(
            "host_terminated", pattern=f"{DAG_ID}-{TASK_ID}-try1-*", count=1, after_seconds=0.2
        )
        yield Runs(stack, [DAG_ID])


def _events_when_written(runs: Runs, run: FinishedRun) -> dict[str, list[tuple[int | None, str]]]:
    """(try number, extra) of the task's reclaim and fallback rows, once both kinds are written: the
    scheduler writes the executor's event-log rows in its own loop, not with the task's state."""
    deadline = time.monotonic() + EVENTS_TIMEOUT
    while True:
        rows = runs.stack.task_events(run.dag_id, run.run_id, TASK_ID)
        found = {
            event: [(row.try_number, row.extra or "") for row in rows if row.event == event]
            for event in (RECLAIMED, FALLBACK)
        }
        if all(found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def test_a_try_reclaimed_on_the_spot_queue_is_retried_on_the_fallback_queue(runs: Runs) -> None:
    environment = runs.stack.environment
    assert (environment.job_queue, environment.second_job_queue) == (JOB_QUEUE, SECOND_JOB_QUEUE)
    assert INSTANCE in HOST_TERMINATED_REASON
    run = runs.finish(DAG_ID)

    ti = run.task_instances[(TASK_ID, -1)]
    assert (run.state, ti.state, ti.try_number) == ("success", "success", 2)
    assert run.submissions_per_try() == {(TASK_ID, -1, 1): 1, (TASK_ID, -1, 2): 1}
    first, second = run.submission(TASK_ID, 1), run.submission(TASK_ID, 2)
    assert "-try1-" in first["jobName"] and "-try2-" in second["jobName"]
    assert first["jobQueue"] == JOB_QUEUE, "try 1 went to the stack's (Spot) queue"
    assert second["jobQueue"] == SECOND_JOB_QUEUE, "try 2 fell back after one reclaim"

    events = _events_when_written(runs, run)
    assert len(events[RECLAIMED]) == 1, events
    reclaimed_try, reclaimed = events[RECLAIMED][0]
    assert reclaimed_try == 1, "the row belongs to the reclaimed try"
    assert INSTANCE in reclaimed and first["jobName"] in reclaimed, reclaimed
    assert f"on job queue {JOB_QUEUE}." in reclaimed, reclaimed
    assert len(events[FALLBACK]) == 1, events
    fallback_try, fallback = events[FALLBACK][0]
    assert fallback_try == 2, "the row belongs to the try sent to the fallback queue"
    assert f"job queue {SECOND_JOB_QUEUE} instead of {JOB_QUEUE}" in fallback, fallback
