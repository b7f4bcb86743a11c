"""Airflow's multi-team mode on a real stack: two teams, each with its own DAG bundle, executor, Batch
job queue and job definition, next to a global executor; and a team's bad setting stopping start-up.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from batch_devtools.devstack import DevStack
from tests.e2e.harness import (
    DAGS_FOLDER,
    FinishedRun,
    Runs,
    e2e_stack,
    log_events,
    release,
    wait_until_running,
)

pytestmark = pytest.mark.e2e

BUNDLES = DAGS_FOLDER / "multi_team"
TEAMS = ("team_a", "team_b")
GLOBAL_DAG = "e2e_teams_global"
EVENT_WAIT_SECONDS = 30.0
LIVE_TEAM = "team_a"
"""Its task logs ``LIVE_LINE`` and then runs until released (dags/multi_team/team_a/team_a.py)."""
LIVE_LINE = f"e2e live log line of {LIVE_TEAM}"
LIVE_LOG_WAIT_SECONDS = 90.0


def team_dag(team: str) -> str:
    return f"e2e_{team}"


@pytest.fixture(scope="module")
def runs() -> Iterator[Runs]:
    with e2e_stack(BUNDLES / "global", teams={team: BUNDLES / team for team in TEAMS}) as stack:
        yield Runs(stack, [GLOBAL_DAG, *(team_dag(team) for team in TEAMS)])


def test_a_running_team_tasks_log_is_served_from_its_batch_job(runs: Runs) -> None:
    """The api-server's executor belongs to no team: it reads a team task's job log all the same."""
    stack, dag_id = runs.stack, team_dag(LIVE_TEAM)
    run_id = runs.run_ids[dag_id]
    try:
        job_id = wait_until_running(stack, dag_id, run_id, [("work", -1)])[("work", -1)]
        deadline = time.monotonic() + LIVE_LOG_WAIT_SECONDS
        events: list[str] = []
        while True:
            try:
                events = log_events(stack.api.task_log(dag_id, run_id, "work", 1))
            except (OSError, ValueError) as error:
                # The one API server worker also serves every job's calls: a slow or failed answer under
                # load is asked again, not a failure.
                print(f"reading the live log: {error}")
            if any(LIVE_LINE in event for event in events):
                break
            assert time.monotonic() < deadline, f"the live log never showed {LIVE_LINE!r}: {events}"
            time.sleep(1)

        assert stack.task_states(dag_id, run_id)[("work", -1)] == "running", "the log was read while it ran"
        stream = f"/aws/batch/job/{stack.team_resources(LIVE_TEAM).job_definition}/default/{job_id}"
        sources = [event for event in events if f"AWS Batch job {job_id}" in event]
        assert sources and stream in sources[0], (
            f"no source naming job {job_id} and stream {stream}: {events}"
        )
    finally:
        # Also when an assertion failed, so that the module's other tests find the run finishing.
        release(stack, dag_id)


def test_a_bad_team_setting_stops_a_scheduler_at_start_up_naming_the_team(runs: Runs) -> None:
    """One more scheduler, with team_b's job queue pointing nowhere, refuses to start.

    It runs while the module's DAG runs are in flight, which the other tests then find unharmed.
    """
    stack = runs.stack
    variable = "AIRFLOW__TEAM_B___AWS_BATCH_EXECUTOR__JOB_QUEUE"

    result = stack.airflow_cli("scheduler", "--skip-serve-logs", env={variable: "no-such-queue"})

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "AwsBatchExecutor of team 'team_b' cannot start" in output, output
    assert "job queue 'no-such-queue' does not exist" in output, output
    assert variable in output, "the fix names team_b's own variable"
    assert "of team 'team_a'" not in output, "team_a's settings are fine"
    assert stack.live_schedulers() == 1, "the stack's scheduler is untouched"


@pytest.mark.parametrize("team", TEAMS)
def test_a_teams_task_runs_in_its_teams_queue_with_its_definition_and_tag(runs: Runs, team: str) -> None:
    if team == LIVE_TEAM:
        # Released by the live-log test above already; again here for when that test is not selected.
        release(runs.stack, team_dag(team))
    run = runs.finish(team_dag(team))
    resources = runs.stack.team_resources(team)

    assert runs.stack.metadata.dag_teams()[run.dag_id] == team, "Airflow knows the DAG as the team's"
    assert (run.state, run.states()) == ("success", {("work", -1): "success"}), (
        "the task checks LOCAL_BATCH_TEAM inside its job"
    )
    request = run.submission("work")
    assert (request["jobQueue"], request["jobDefinition"]) == (resources.job_queue, resources.job_definition)
    assert request["tags"]["airflow.team"] == team
    assert_job_recorded_and_reported(runs.stack, run)


def test_a_global_dags_task_runs_in_the_global_queue_without_a_team(runs: Runs) -> None:
    run = runs.finish(GLOBAL_DAG)
    environment = runs.stack.environment

    assert runs.stack.metadata.dag_teams()[GLOBAL_DAG] is None
    assert (run.state, run.states()) == ("success", {("work", -1): "success"}), (
        "the task checks that no team's job definition runs it"
    )
    request = run.submission("work")
    assert (request["jobQueue"], request["jobDefinition"]) == (
        environment.job_queue,
        environment.job_definition,
    )
    assert "airflow.team" not in request["tags"]
    assert_job_recorded_and_reported(runs.stack, run)


def assert_job_recorded_and_reported(stack: DevStack, run: FinishedRun) -> None:
    """The task instance points at the job that was submitted for it, and the scheduler heard of the
    job's end from the executor that submitted it (a task reports its own state, so the run's success
    alone does not show that its executor followed the job)."""
    request = run.submission("work")
    job_id = run.task_instances[("work", -1)].external_executor_id
    jobs = stack.describe_jobs([job_id]) if job_id else {}
    assert job_id in jobs and jobs[job_id]["jobName"] == request["jobName"]
    event = re.compile(
        r"Received executor event with state success for task instance TaskInstanceKey\("
        rf"dag_id='{run.dag_id}', task_id='work', run_id='{re.escape(run.run_id)}'"
    )
    deadline = time.monotonic() + EVENT_WAIT_SECONDS
    while not event.search(stack.component_log("scheduler-1")):
        assert time.monotonic() < deadline, f"no success event for {run.dag_id} in the scheduler's log"
        time.sleep(0.5)
