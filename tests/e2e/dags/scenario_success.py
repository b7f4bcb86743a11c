"""Two chained tasks passing a value through XCom: the plain happy path."""

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def e2e_success():
    @task
    def produce() -> int:
        return 21

    @task
    def double(value: int) -> int:
        if value * 2 != 42:
            raise ValueError(f"expected 21 from produce, got {value}")
        return value * 2

    double(produce())


e2e_success()
