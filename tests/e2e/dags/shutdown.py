"""Tasks that are still running when their scheduler receives SIGTERM: each runs until the test has
seen the next scheduler adopt all three (tests/e2e/test_shutdown.py releases them)."""

import pendulum
from airflow.sdk import dag, task
from e2e_release import wait_for_release

DAG_ID = "e2e_shutdown"


@dag(dag_id=DAG_ID, schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def e2e_shutdown():
    @task
    def sleeper(n: int) -> int:
        wait_for_release(DAG_ID)
        return n

    sleeper.expand(n=[0, 1, 2])


e2e_shutdown()
