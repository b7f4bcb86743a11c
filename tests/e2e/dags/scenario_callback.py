"""Runs that miss their deadline: each deadline callback runs on the executor, in a Batch job of its own.

One DAG per alert, their deadlines 4 s apart: Airflow 3.2 handles the deadlines missed in one
scheduler loop by editing each callback's data in place, and saves it for only one of them; the
others wait forever without their DAG run ("missing required 'dag_run_id'"). Airflow 3.3 does not.
"""

from datetime import timedelta

import pendulum
from airflow.sdk import DeadlineAlert, DeadlineReference, SyncCallback, dag, task

ALERTS = "e2e_callback_alerts"


def missing_its_deadline(dag_id: str, callback: str, after_seconds: int) -> None:
    @dag(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
        catchup=False,
        deadline=DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=timedelta(seconds=after_seconds),
            callback=SyncCallback(f"{ALERTS}.{callback}"),
        ),
    )
    def late():
        @task
        def slow() -> None:
            import time

            time.sleep(15)

        slow()

    late()


missing_its_deadline("e2e_callback", "record_missed_deadline", 2)
missing_its_deadline("e2e_callback_failing", "fail_to_alert", 6)
