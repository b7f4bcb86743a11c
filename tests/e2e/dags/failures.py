"""One DAG per failure-handling scenario; the tests switch local-Batch faults on by job name.

Every DAG has a single task, so a fault's job-name glob (``<dag_id>-<task_id>-try<N>-*``) hits
exactly one task instance try.
"""

import time
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

START = pendulum.datetime(2025, 1, 1, tz="UTC")


@dag(schedule=None, start_date=START, catchup=False)
def e2e_fail_transient():
    @task(retries=0)
    def pulls_late() -> str:
        return "ran after the image pull was retried"

    pulls_late()


@dag(schedule=None, start_date=START, catchup=False)
def e2e_fail_permanent():
    @task(retries=0)
    def missing_image() -> None:
        print("must never run: the image does not exist")

    missing_image()


@dag(schedule=None, start_date=START, catchup=False)
def e2e_fail_host():
    @task(retries=1, retry_delay=timedelta(seconds=1))
    def long_runner() -> None:
        time.sleep(10)

    long_runner()


@dag(schedule=None, start_date=START, catchup=False)
def e2e_fail_stuck():
    @task(retries=0)
    def starved() -> None:
        print("must never run: no capacity")

    starved()


@dag(schedule=None, start_date=START, catchup=False)
def e2e_fail_misconfigured():
    @task(retries=0)
    def too_big() -> None:
        print("must never run: no compute environment fits it")

    too_big()


e2e_fail_transient()
e2e_fail_permanent()
e2e_fail_host()
e2e_fail_stuck()
e2e_fail_misconfigured()
