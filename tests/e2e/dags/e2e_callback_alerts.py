"""Deadline callbacks of ``scenario_callback.py``: Airflow hands them to the executor, which runs each
in a Batch job of its own. They live in the DAG bundle, as a user's callbacks would."""

import os
from pathlib import Path


def record_missed_deadline(context: dict, **_: object) -> None:
    """Leave a mark under AIRFLOW_HOME (which the local Batch's jobs share), named after the run."""
    marks = Path(os.environ["AIRFLOW_HOME"]) / "e2e-callbacks"
    marks.mkdir(exist_ok=True)
    (marks / context["dag_run"]["dag_run_id"].replace(":", "_")).write_text("deadline missed")


def fail_to_alert(**_: object) -> None:
    raise RuntimeError("the alerting service is down")
