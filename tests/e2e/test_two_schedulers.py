"""Two schedulers at once on PostgreSQL (row-level locking): every task runs exactly once, with job
status from DescribeJobs polling and from state-change events on one status queue both read."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from batch_devtools.devstack import DevStack, Timing
from tests.e2e.harness import DAGS_FOLDER, FinishedRun, Runs, finished_run, postgres_problem

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
"""The first test of each stack also pays its start-up, and the second may need up to ``MAX_RUNS`` runs:
more than the suite's 300 s per test when the machine is busy."""

DAG_ID = "e2e_two_schedulers"
WIDTH = 12
MAX_RUNS = 3
RUN_TIMEOUT_SECONDS = 300.0
"""A run of 13 jobs on two schedulers, PostgreSQL and the local Batch sharing 2 busy cores: the harness's
150 s leaves it too little margin under CI load. A wait for the run's end, free when the machine is not."""
RECONCILE_SECONDS = 20
"""The stack's status_reconcile_interval (120 s by default).

In event mode a scheduler leaves the other scheduler's events on the queue; one that is received by
the wrong scheduler too often is dropped and its job is found by reconciliation instead. A short
interval keeps that path in the test without two minutes of waiting for it."""
HEALTH_CHECK_SECONDS = 60
"""Both schedulers live through the test: with the stacks' usual 6 s, a scheduler starved of CPU for
6 s on a loaded machine would be taken for dead, and the other would adopt or reset its tasks while it
still runs them. Adoption after a real death is the other modules' test."""
TIMING = Timing(
    status_reconcile_interval=RECONCILE_SECONDS, scheduler_health_check_threshold=HEALTH_CHECK_SECONDS
)
RECONCILE_MARGIN_SECONDS = 3 * RECONCILE_SECONDS
"""How long executor events may take: a reconciliation and some slack."""

EXECUTOR_EVENT = re.compile(
    r"Received executor event with state (\w+) for task instance "
    r"TaskInstanceKey\(dag_id='" + DAG_ID + r"', task_id='(\w+)', run_id='([^']+)', "
    r"try_number=(\d+), map_index=(-?\d+)\)"
)


@pytest.fixture(scope="module", params=["polling", "events"])
def runs(request: pytest.FixtureRequest) -> Iterator[Runs]:
    if problem := postgres_problem():
        pytest.skip(problem)
    with DevStack(
        DAGS_FOLDER,
        dag_files=["two_schedulers.py"],
        database="postgres",
        schedulers=2,
        status_events=request.param == "events",
        timing=TIMING,
    ) as stack:
        yield Runs(stack, [DAG_ID])


def executor_events(stack: DevStack, run_id: str) -> dict[str, list[tuple[str, int, str]]]:
    """Per scheduler log: (task_id, map_index, state) of each executor event it processed for the run."""
    found: dict[str, list[tuple[str, int, str]]] = {}
    for name in ("scheduler-1", "scheduler-2"):
        found[name] = [
            (match[2], int(match[5]), match[1])
            for match in EXECUTOR_EVENT.finditer(stack.component_log(name))
            if match[3] == run_id
        ]
    return found


def test_two_schedulers_run_every_task_exactly_once(runs: Runs) -> None:
    run = runs.finish(DAG_ID, RUN_TIMEOUT_SECONDS)

    expected = {("work", index): "success" for index in range(WIDTH)} | {("single", -1): "success"}
    assert (run.state, run.states()) == ("success", expected)
    assert all(ti.try_number == 1 for ti in run.task_instances.values())
    assert run.submissions_per_try() == {(task_id, index, 1): 1 for task_id, index in expected}
    job_names = [request["jobName"] for request in run.submissions]
    batch_jobs = [job for job in runs.stack.batch.jobs() if job["jobName"] in set(job_names)]
    assert len(batch_jobs) == len(expected), "Batch holds exactly one job per task instance"
    assert runs.stack.live_schedulers() == 2, "both schedulers stayed up for the whole run"


def test_each_job_outcome_reaches_the_scheduler_that_submitted_it(runs: Runs) -> None:
    """The executor of each scheduler reports the end of every job it submitted, exactly once.

    A task reports its own state to the API server, so the run succeeds even if an executor never hears
    of its job's end; this checks what the executors themselves reported, as the schedulers logged it.
    Which scheduler queues a task is a race, and now and then one scheduler wins all of a run's tasks;
    the check needs jobs of both, so such a run is checked and then followed by another, up to
    ``MAX_RUNS`` in all.
    """
    run = runs.finish(DAG_ID, RUN_TIMEOUT_SECONDS)
    tried: list[dict[str, int]] = []
    while True:
        events = reported_events(runs.stack, run)
        finished = sorted(
            (task_id, index)
            for lines in events.values()
            for task_id, index, state in lines
            if state == "success"
        )
        assert finished == sorted(run.task_instances), "one success event per task instance, in all"
        tried.append({name: len(lines) for name, lines in events.items()})
        if all(tried[-1].values()) or len(tried) == MAX_RUNS:
            break
        run = finished_run(runs.stack, DAG_ID, runs.stack.trigger(DAG_ID), RUN_TIMEOUT_SECONDS)
    assert all(tried[-1].values()), f"both schedulers ran tasks in one of {len(tried)} runs: {tried}"
    calls = runs.stack.batch.calls()
    if runs.stack.status_events:
        assert calls["receivemessage"] > 0 and calls["deletemessagebatch"] > 0
    else:
        assert "receivemessage" not in calls


def reported_events(stack: DevStack, run: FinishedRun) -> dict[str, list[tuple[str, int, str]]]:
    """The run's executor events per scheduler, once every task's success is among them or the margin
    for reconciliation has passed."""
    deadline = time.monotonic() + RECONCILE_MARGIN_SECONDS
    while True:
        events = executor_events(stack, run.run_id)
        successes = sum(1 for lines in events.values() for _, _, state in lines if state == "success")
        if successes >= len(run.task_instances) or time.monotonic() > deadline:
            return events
        time.sleep(2)
