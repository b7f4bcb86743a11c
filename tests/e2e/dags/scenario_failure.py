"""A task that fails without retries; its downstream task must never run."""

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def e2e_failure():
    @task(retries=0)
    def broken() -> None:
        raise RuntimeError("this task fails on purpose")

    @task
    def after() -> None:
        print("must not run")

    broken() >> after()


e2e_failure()
