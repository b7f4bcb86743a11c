"""Long tasks that outlive a killed scheduler: three succeed, one fails, each after ~20 s."""

import time

import pendulum
from airflow.sdk import dag, task

SLEEP_SECONDS = 20


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def e2e_adoption():
    @task
    def sleeper(n: int) -> int:
        time.sleep(SLEEP_SECONDS)
        return n

    @task(retries=0)
    def failing_sleeper() -> None:
        time.sleep(SLEEP_SECONDS)
        raise RuntimeError("fails on purpose after the scheduler was replaced")

    sleeper.expand(n=[0, 1, 2])
    failing_sleeper()


e2e_adoption()
