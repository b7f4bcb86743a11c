"""One task whose first try's host is "reclaimed" (a local-Batch ``host_terminated`` fault on try 1's
job name): with ``queue_fallbacks`` set, Airflow's retry runs on the fallback queue."""

import os
import time
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def e2e_spot_fallback():
    @task(retries=2, retry_delay=timedelta(seconds=1))
    def reclaimable(**context) -> str:
        if context["ti"].try_number == 1:
            # Outlives the fault's delay, so try 1 is always reclaimed while it runs, never done first.
            time.sleep(30)
        return os.environ.get("AWS_BATCH_JQ_NAME", "")

    reclaimable()


e2e_spot_fallback()
