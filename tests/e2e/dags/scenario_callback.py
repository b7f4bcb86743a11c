"""Runs that miss their deadline: each deadline callback runs on the executor, in a Batch job of its own.

One DAG per alert, their deadlines 18 s apart: Airflow 3.2 handles the deadlines missed in one
scheduler loop by editing each callback's data in place, and saves it for only one of them; the
others wait forever without their DAG run ("missing required 'dag_run_id'"). Airflow 3.3 does not.
A loop of a loaded scheduler took more than the 4 s they were apart before. The runs' tasks wait for
the test's release (tests/e2e/test_scenarios.py), so both deadlines pass while they run.
"""

from datetime import timedelta

import pendulum
from airflow.sdk import DeadlineAlert, DeadlineReference, SyncCallback, dag, task
from e2e_release import wait_for_release

ALERTS = "e2e_callback_alerts"
RELEASE = "e2e_callbacks"


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
            wait_for_release(RELEASE)

        slow()

    late()


missing_its_deadline("e2e_callback", "record_missed_deadline", 2)
missing_its_deadline("e2e_callback_failing", "fail_to_alert", 20)
