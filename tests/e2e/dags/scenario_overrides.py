"""executor_config overrides: an environment variable the task checks, and a bigger Fargate size."""

import os

import pendulum
from airflow.sdk import dag, task

CONFIG = {
    "containerOverrides": {
        "environment": [{"name": "E2E_GREETING", "value": "hello from executor_config"}],
        "resourceRequirements": [{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "2048"}],
    }
}


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def e2e_overrides():
    @task(executor_config=CONFIG)
    def configured() -> None:
        greeting = os.environ.get("E2E_GREETING")
        if greeting != "hello from executor_config":
            raise RuntimeError(f"E2E_GREETING is {greeting!r} inside the job")

    configured()


e2e_overrides()
