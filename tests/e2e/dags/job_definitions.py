"""Tasks with job definitions of their own: another image, an EFS volume, beside a plain task.

Each task checks, inside its job, what the local Batch reports about the definition it runs on.
"""

import os

import pendulum
from airflow.sdk import dag, task

from airflow_batch_executor import BatchJobOverrides, EfsVolume

BASE_IMAGE = "local/airflow-task:latest"
OTHER_IMAGE = "local/airflow-task-ml:2"


def expect(name: str, wanted: str) -> None:
    found = os.environ.get(name)
    if found != wanted:
        raise RuntimeError(f"{name} is {found!r} inside the job, expected {wanted!r}")


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def e2e_own_definitions():
    @task
    def plain() -> None:
        expect("LOCAL_BATCH_IMAGE", BASE_IMAGE)

    @task(executor_config=BatchJobOverrides(image=OTHER_IMAGE))
    def other_image() -> None:
        expect("LOCAL_BATCH_IMAGE", OTHER_IMAGE)

    @task(executor_config=BatchJobOverrides(volumes=[EfsVolume("shared", "fs-0e2e0e2e", "/mnt/shared")]))
    def mounted() -> None:
        expect("LOCAL_BATCH_IMAGE", BASE_IMAGE)
        expect("LOCAL_BATCH_MOUNT_POINTS", "/mnt/shared")

    plain()
    other_image()
    mounted()


e2e_own_definitions()
