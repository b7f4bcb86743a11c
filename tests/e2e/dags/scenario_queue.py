"""A task whose Airflow queue names the second Batch job queue; it checks where it ran."""

import os

import pendulum
from airflow.sdk import dag, task

SECOND_QUEUE = "airflow-local-queue-2"


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def e2e_queue():
    @task(queue=SECOND_QUEUE)
    def routed() -> None:
        queue = os.environ.get("AWS_BATCH_JQ_NAME")
        if queue != SECOND_QUEUE:
            raise RuntimeError(f"ran on Batch queue {queue!r}, expected {SECOND_QUEUE}")

    routed()


e2e_queue()
