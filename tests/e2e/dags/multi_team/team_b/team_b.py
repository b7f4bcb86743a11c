"""A DAG of the team bundle: its task checks inside its Batch job that the team's job definition runs it."""

import os

import pendulum
from airflow.sdk import dag, task

TEAM = "team_b"


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def e2e_team_b():
    @task
    def work() -> None:
        team = os.environ.get("LOCAL_BATCH_TEAM")
        if team != TEAM:
            raise RuntimeError(f"ran with the job definition of team {team!r}, expected {TEAM!r}")

    work()


e2e_team_b()
