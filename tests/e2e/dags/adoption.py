"""Long tasks that outlive a killed scheduler: three succeed and one fails, each once the test has
seen the next scheduler adopt all four (tests/e2e/test_scheduler_adoption.py releases them)."""

import pendulum
from airflow.sdk import dag, task
from e2e_release import wait_for_release

DAG_ID = "e2e_adoption"


@dag(dag_id=DAG_ID, schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def e2e_adoption():
    @task
    def sleeper(n: int) -> int:
        wait_for_release(DAG_ID)
        return n

    @task(retries=0)
    def failing_sleeper() -> None:
        wait_for_release(DAG_ID)
        raise RuntimeError("fails on purpose after the scheduler was replaced")

    sleeper.expand(n=[0, 1, 2])
    failing_sleeper()


e2e_adoption()
