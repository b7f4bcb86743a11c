"""What e2e tests share: starting a stack on tests/e2e/dags, triggering runs up front, and reading
back one run's task instances and SubmitJob requests.

Runs are triggered together when a module's stack starts and each test waits only for its own,
so a module costs one stack start-up plus its slowest run, not the sum of its runs.
"""

from __future__ import annotations

import importlib
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from batch_devtools.devstack import DevStack, TaskInstanceRow
from batch_devtools.devstack.database import postgres_reachable

DAGS_FOLDER = Path(__file__).parent / "dags"
RUN_TIMEOUT_SECONDS = 150.0
RELEASE_HELPER = "e2e_release.py"
"""The DAGs' helper that holds a task until ``release``: list it in ``dag_files`` of a stack whose DAG
files import it."""
RELEASE_FOLDER = "e2e-release"
"""Under AIRFLOW_HOME; ``RELEASE_FOLDER`` of dags/e2e_release.py."""
ADOPTION_TIMEOUT_SECONDS = 180.0
ADOPTED = re.compile(r"Adopted (\d+) task instance\(s\) with Batch jobs")
"""The executor's line for each adoption pass that found jobs."""

TryKey = tuple[str, int, int]
"""(task_id, map_index, try_number): one task instance try of a run."""


@dataclass(frozen=True)
class FinishedRun:
    dag_id: str
    run_id: str
    state: str
    task_instances: dict[tuple[str, int], TaskInstanceRow]
    submissions: list[dict[str, Any]]
    """The SubmitJob requests the local Batch received for this run, in order."""

    def states(self) -> dict[tuple[str, int], str | None]:
        return {key: ti.state for key, ti in self.task_instances.items()}

    def submissions_per_try(self) -> Counter[TryKey]:
        return Counter(
            (tags["airflow.task_id"], int(tags["airflow.map_index"]), int(tags["airflow.try_number"]))
            for tags in (request["tags"] for request in self.submissions)
        )

    def submission(self, task_id: str, try_number: int = 1, map_index: int = -1) -> dict[str, Any]:
        matching = [
            request
            for request in self.submissions
            if (
                request["tags"]["airflow.task_id"],
                int(request["tags"]["airflow.map_index"]),
                int(request["tags"]["airflow.try_number"]),
            )
            == (task_id, map_index, try_number)
        ]
        assert len(matching) == 1, (
            f"expected one SubmitJob for {task_id} try {try_number}, got {len(matching)}"
        )
        return matching[0]


def airflow_has(module: str) -> bool:
    """Whether the installed Airflow has a module: how e2e tests tell which features it offers."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def postgres_problem() -> str | None:
    """Why no stack's metadata database can be on this machine's PostgreSQL; None when one can. On
    CI, where PostgreSQL must run, the test fails instead."""
    problem = postgres_reachable()
    if problem is not None and os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{problem}; CI must run this test on PostgreSQL, so start it on 127.0.0.1:5432")
    return problem


def e2e_stack(dags_folder: Path, **options: Any) -> DevStack:
    """A stack for an end-to-end test, its metadata database on PostgreSQL where one runs, else on
    SQLite. A stack's components write at the same moments, and on SQLite a write that meets another
    fails at once with "database is locked" (a deferred transaction cannot wait for the lock it must
    upgrade): a scheduler whose last write on SIGTERM met the API server's exited with 1. A fresh
    PostgreSQL database is a copy of a migrated template, so it costs no migration either."""
    return DevStack(dags_folder, database="sqlite" if postgres_problem() else "postgres", **options)


def log_events(answer: dict[str, Any]) -> list[str]:
    """The lines of a task log as Airflow's REST API answers it (``ApiClient.task_log``)."""
    return [
        str(entry.get("event", "")) if isinstance(entry, dict) else str(entry) for entry in answer["content"]
    ]


def job_ids_by_name(stack: DevStack, job_name: str) -> list[str]:
    """Ids of every local Batch job with this name, oldest first (a resubmission reuses the name)."""
    return [job["jobId"] for job in stack.batch.jobs() if job["jobName"] == job_name]


def job_id_of(stack: DevStack, job_name: str) -> str:
    """The id of the one local Batch job with this name."""
    ids = job_ids_by_name(stack, job_name)
    assert len(ids) == 1, f"expected one Batch job named {job_name}, found {ids}"
    return ids[0]


class Runs:
    """DAG runs triggered at once on one stack; ``finish(dag_id)`` waits for one and reads it back."""

    def __init__(self, stack: DevStack, dag_ids: Iterable[str]) -> None:
        self.stack = stack
        self.run_ids = {dag_id: stack.trigger(dag_id) for dag_id in dag_ids}

    def finish(self, dag_id: str, timeout: float = RUN_TIMEOUT_SECONDS) -> FinishedRun:
        return finished_run(self.stack, dag_id, self.run_ids[dag_id], timeout)


def finished_run(
    stack: DevStack, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT_SECONDS
) -> FinishedRun:
    state = stack.wait_for_run(dag_id, run_id, timeout)
    submissions = [
        request
        for request in stack.submitted_requests()
        if request.get("tags", {}).get("airflow.dag_id") == dag_id
        and request["tags"].get("airflow.run_id") == run_id
    ]
    return FinishedRun(
        dag_id=dag_id,
        run_id=run_id,
        state=state,
        task_instances={ti.key: ti for ti in stack.task_instances(dag_id, run_id)},
        submissions=submissions,
    )


def release(stack: DevStack, name: str) -> None:
    """Let the tasks waiting in ``wait_for_release(name)`` (dags/e2e_release.py) finish.

    The file is created where the stack's jobs look: their AIRFLOW_HOME is the stack's. Releasing twice
    is harmless.
    """
    folder = Path(stack.env["AIRFLOW_HOME"]) / RELEASE_FOLDER
    folder.mkdir(exist_ok=True)
    (folder / name).touch()


def adopted(stack: DevStack, scheduler: str) -> int:
    """How many task instances ``scheduler`` (e.g. ``scheduler-2``) logged adopting, over all its passes."""
    return sum(int(count) for count in ADOPTED.findall(stack.component_log(scheduler)))


def wait_until_adopted(
    stack: DevStack, scheduler: str, count: int, timeout: float = ADOPTION_TIMEOUT_SECONDS
) -> None:
    """Wait until ``scheduler`` has logged adopting at least ``count`` task instances (after a SIGKILL,
    that is only once the dead scheduler's heartbeat is stale and an orphan check has run)."""
    deadline = time.monotonic() + timeout
    while (found := adopted(stack, scheduler)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{scheduler} logged adopting {found} of {count} in {timeout:.0f}s")
        time.sleep(0.5)


def wait_until_running(
    stack: DevStack, dag_id: str, run_id: str, keys: Sequence[tuple[str, int]], timeout: float = 150.0
) -> dict[tuple[str, int], str]:
    """Job id per (task id, map index) once every one of ``keys`` runs inside its Batch job.

    The default is generous because it is a wait for a condition, free when the stack is quick: on a
    loaded 2-core CI machine (two stacks at once), parsing, scheduling and starting each job's Task SDK
    can take longer than a minute.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tis = {ti.key: ti for ti in stack.task_instances(dag_id, run_id)}
        if all(key in tis and tis[key].state == "running" and tis[key].external_executor_id for key in keys):
            return {key: str(tis[key].external_executor_id) for key in keys}
        time.sleep(0.25)
    raise AssertionError(
        f"{list(keys)} were not all running within {timeout}s: {stack.task_states(dag_id, run_id)}"
    )
