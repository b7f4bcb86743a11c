"""Six mapped tasks and a reduce over their results."""

import pendulum
from airflow.sdk import dag, task

WIDTH = 6


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def e2e_mapped():
    @task
    def items() -> list[int]:
        return list(range(WIDTH))

    @task
    def square(n: int) -> int:
        return n * n

    @task
    def total(values: list[int]) -> None:
        if sum(values) != sum(n * n for n in range(WIDTH)):
            raise ValueError(f"mapped results {values} are wrong")

    total(square.expand(n=items()))


e2e_mapped()
