"""A DAG of the team bundle: its task checks inside its Batch job that the team's job definition runs it,
then logs a line and stays running until the test, having read that line from the live log through
Airflow's API, releases it."""

import os
import time
from pathlib import Path

import pendulum
from airflow.sdk import dag, task

TEAM = "team_a"
DAG_ID = f"e2e_{TEAM}"
RELEASE_GIVE_UP_SECONDS = 600


def wait_for_release(name: str) -> None:
    """A copy of tests/e2e/dags/e2e_release.py's: that folder is none of the multi-team stack's bundles.

    Waits for ``$AIRFLOW_HOME/e2e-release/<name>`` (tests/e2e/harness.py ``release``) instead of a
    fixed sleep, which a loaded CI machine outlasted before the test had read the log.
    """
    release = Path(os.environ["AIRFLOW_HOME"]) / "e2e-release" / name
    deadline = time.monotonic() + RELEASE_GIVE_UP_SECONDS
    while not release.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} was not created within {RELEASE_GIVE_UP_SECONDS}s")
        time.sleep(0.5)


@dag(dag_id=DAG_ID, schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def e2e_team_a():
    @task
    def work() -> None:
        team = os.environ.get("LOCAL_BATCH_TEAM")
        if team != TEAM:
            raise RuntimeError(f"ran with the job definition of team {team!r}, expected {TEAM!r}")
        print(f"e2e live log line of {TEAM}", flush=True)
        wait_for_release(DAG_ID)

    work()


e2e_team_a()
