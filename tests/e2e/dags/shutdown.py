"""Tasks that are still running when their scheduler receives SIGTERM: each sleeps ~15 s."""

import time

import pendulum
from airflow.sdk import dag, task

SLEEP_SECONDS = 15


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def e2e_shutdown():
    @task
    def sleeper(n: int) -> int:
        time.sleep(SLEEP_SECONDS)
        return n

    sleeper.expand(n=[0, 1, 2])


e2e_shutdown()
