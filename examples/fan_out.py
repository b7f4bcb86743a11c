"""Fan-out: eight mapped tasks, each its own Batch job, then one reduce over their results."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

WIDTH = 8


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False, tags=["example"])
def fan_out() -> None:
    @task
    def chunks() -> list[int]:
        return list(range(WIDTH))

    @task
    def square(n: int) -> int:
        return n * n

    @task
    def total(squares: list[int]) -> int:
        result = sum(squares)
        expected = sum(n * n for n in range(WIDTH))
        if result != expected:
            raise ValueError(f"the mapped results add up to {result}, expected {expected}")
        print(f"sum of squares below {WIDTH}: {result}")
        return result

    total(square.expand(n=chunks()))


fan_out()
