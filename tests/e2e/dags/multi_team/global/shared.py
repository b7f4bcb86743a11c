"""A DAG of the global bundle: its task checks inside its Batch job that no team's definition runs it."""

import os

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def e2e_teams_global():
    @task
    def work() -> None:
        team = os.environ.get("LOCAL_BATCH_TEAM")
        if team is not None:
            raise RuntimeError(f"ran with the job definition of team {team!r}, expected the global one")

    work()


e2e_teams_global()
