"""A DAG of the team bundle: its task checks inside its Batch job that the team's job definition runs it,
then logs a line and stays running a while, for its live log to be read through Airflow's API."""

import os
import time

import pendulum
from airflow.sdk import dag, task

TEAM = "team_a"
RUNNING_SECONDS = 10


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def e2e_team_a():
    @task
    def work() -> None:
        team = os.environ.get("LOCAL_BATCH_TEAM")
        if team != TEAM:
            raise RuntimeError(f"ran with the job definition of team {team!r}, expected {TEAM!r}")
        print(f"e2e live log line of {TEAM}", flush=True)
        time.sleep(RUNNING_SECONDS)

    work()


e2e_team_a()
