"""A flaky task: its first try fails, Airflow retries it a few seconds later as a new Batch job,
and the second try succeeds."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False, tags=["example"])
def retry_once() -> None:
    @task(retries=1, retry_delay=timedelta(seconds=2))
    def flaky(**context: object) -> int:
        try_number = context["ti"].try_number  # type: ignore[attr-defined]
        if try_number == 1:
            raise RuntimeError("failing on purpose on try 1; the retry (try 2) succeeds")
        print(f"succeeded on try {try_number}")
        return try_number

    flaky()


retry_once()
