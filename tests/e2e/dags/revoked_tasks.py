"""Tasks the scheduler revokes for staying queued past ``task_queued_timeout``, and one that keeps
running meanwhile; see tests/e2e/test_revoked_tasks.py.

One DAG per role, because the test triggers them one after another: a fault that the local Batch
applies per API operation (SubmitJob throttling) must only start once the holder's job exists.
"""

import pendulum
from airflow.sdk import dag, task
from e2e_release import wait_for_release

START = pendulum.datetime(2025, 1, 1, tz="UTC")
HOLDER = "e2e_revoke_holder"


@dag(dag_id=HOLDER, schedule=None, start_date=START, catchup=False)
def e2e_revoke_holder():
    @task(retries=0)
    def holder() -> None:
        # Runs until the test has seen both other tasks revoked and rescheduled, however long that takes.
        wait_for_release(HOLDER)

    holder()


@dag(schedule=None, start_date=START, catchup=False)
def e2e_revoke_tracked():
    @task(retries=0)
    def runnable() -> str:
        return "ran once, after its first Batch job was revoked while RUNNABLE"

    runnable()


@dag(schedule=None, start_date=START, catchup=False)
def e2e_revoke_unsubmitted():
    @task(retries=0)
    def throttled() -> str:
        return "ran once, after being revoked before any Batch job existed"

    throttled()


e2e_revoke_holder()
e2e_revoke_tracked()
e2e_revoke_unsubmitted()
