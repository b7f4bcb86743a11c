"""DAGs for the operator tools: live task logs, ``aws-batch-executor render`` and ``jobs``."""

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from e2e_release import wait_for_release

START = pendulum.datetime(2025, 1, 1, tz="UTC")
LIVE_DAG = "e2e_live_logs"
SECOND_QUEUE = "airflow-local-queue-2"
RENDERED_CONFIG = {
    "containerOverrides": {
        "environment": [{"name": "E2E_RENDERED", "value": "from executor_config"}],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "4096"}],
    }
}
INVALID_FARGATE_SIZE = {
    "containerOverrides": {
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "1024"}],
    }
}

OWN_IMAGE = {"jobDefinitionOverrides": {"containerProperties": {"image": "local/never-run:1"}}}


@dag(dag_id=LIVE_DAG, schedule=None, start_date=START, catchup=False)
def e2e_live_logs():
    @task
    def chatty() -> None:
        for n in range(1, 4):
            print(f"e2e live log line {n}", flush=True)
        # Still running while the test reads these lines through the API; it releases the task then.
        wait_for_release(LIVE_DAG)

    chatty()


@dag(schedule=None, start_date=START, catchup=False)
def e2e_render():
    """Never triggered: ``render`` only needs the serialized DAG."""

    @task(
        executor_config=RENDERED_CONFIG,
        queue=SECOND_QUEUE,
        execution_timeout=timedelta(minutes=10),
    )
    def configured() -> None:
        pass

    @task(executor_config=INVALID_FARGATE_SIZE)
    def badly_sized() -> None:
        pass

    @task(executor_config=OWN_IMAGE)
    def own_image() -> None:
        pass

    configured()
    badly_sized()
    own_image()


@dag(schedule=None, start_date=START, catchup=False)
def e2e_timeout():
    @task(execution_timeout=timedelta(minutes=5))
    def bounded() -> str:
        return "finished well within its timeout"

    bounded()


e2e_live_logs()
e2e_render()
e2e_timeout()
