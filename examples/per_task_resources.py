"""Per-task resources: one task asks Batch for a bigger Fargate size and an extra environment
variable through ``executor_config``, and checks inside its job that the variable arrived."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag, task

BATCH_SIZE = "500"
RESOURCES = {
    "containerOverrides": {
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
        "environment": [{"name": "BATCH_SIZE", "value": BATCH_SIZE}],
    },
}


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False, tags=["example"])
def per_task_resources() -> None:
    @task(executor_config=RESOURCES)
    def train() -> str:
        value = os.environ.get("BATCH_SIZE")
        print(f"BATCH_SIZE={value} in Batch job {os.environ.get('AWS_BATCH_JOB_ID')}")
        if value != BATCH_SIZE:
            raise RuntimeError(
                f"BATCH_SIZE is {value!r}; executor_config's environment did not reach the job"
            )
        return value

    train()


per_task_resources()
