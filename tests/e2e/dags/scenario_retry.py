"""A task that fails on try 1 and succeeds on try 2."""

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def e2e_retry():
    @task(retries=1, retry_delay=timedelta(seconds=1))
    def flaky(**context) -> None:
        if context["ti"].try_number == 1:
            raise RuntimeError("failing try 1 on purpose")

    flaky()


e2e_retry()
