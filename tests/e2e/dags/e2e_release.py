"""Holds a task until its test releases it: the e2e DAG files import this (each test stack lists it in
its ``dag_files``), and tests/e2e/harness.py ``release`` creates the file it waits for.

A task that must outlast something the test does (a scheduler restart and adoption, reading its live
log) waits for that to be checked, not for a fixed number of seconds: on a loaded 2-core CI machine
those steps took longer than any sleep chosen to be cheap, and the task ended too soon.
"""

import os
import time
from pathlib import Path

RELEASE_FOLDER = "e2e-release"
"""Under AIRFLOW_HOME, which the local Batch's jobs share with the test's stack."""
POLL_SECONDS = 0.5
GIVE_UP_SECONDS = 600
"""Past any test's timeout: a test that never releases fails its task rather than leave it waiting."""


def wait_for_release(name: str) -> None:
    """Return once ``$AIRFLOW_HOME/e2e-release/<name>`` exists; raise after ``GIVE_UP_SECONDS``."""
    release = Path(os.environ["AIRFLOW_HOME"]) / RELEASE_FOLDER / name
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while not release.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} was not created within {GIVE_UP_SECONDS}s")
        time.sleep(POLL_SECONDS)
    print(f"released by {release}", flush=True)
