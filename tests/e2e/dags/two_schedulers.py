"""Many short tasks, a few at a time, for two schedulers to compete over.

``max_active_tasks`` frees slots one by one over many scheduler loops, so both schedulers queue tasks
(with every task queued at once, one scheduler's critical section usually takes them all)."""

import pendulum
from airflow.sdk import dag, task

WIDTH = 12


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False, max_active_tasks=4)
def e2e_two_schedulers():
    @task
    def work(n: int) -> int:
        return n

    @task
    def single() -> None:
        print("one of a kind")

    work.expand(n=list(range(WIDTH)))
    single()


e2e_two_schedulers()
