"""The demo: a dev stack on SQLite runs the example DAGs; prints what ran and checks the outcome.

It exits non-zero when an outcome is wrong, so ``scripts/demo`` doubles as a smoke test of the
whole path: scheduler → executor → Batch → Task SDK → execution API.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_devtools.devstack.errors import StackError
from batch_devtools.devstack.metadata import TaskInstanceRow
from batch_devtools.devstack.stack import DevStack
from batch_devtools.devstack.summary import render_table, summary_rows

DEMO_DAGS = ("fan_out", "per_task_resources", "retry_once")
RUN_TIMEOUT_SECONDS = 240.0


@dataclass(frozen=True)
class RunResult:
    dag_id: str
    run_id: str
    state: str
    task_instances: list[TaskInstanceRow]


def outcome_problems(results: list[RunResult], jobs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What differs from the expected outcome: every run succeeds, the flaky task on try 2, and
    every task instance points at the Batch job of its own final try."""
    problems = [
        f"{r.dag_id} run {r.run_id} ended {r.state}, expected success"
        for r in results
        if r.state != "success"
    ]
    for result in results:
        for ti in result.task_instances:
            if ti.state != "success":
                problems.append(f"{ti.dag_id}.{ti.task_id}[{ti.map_index}] is {ti.state}, expected success")
            if (ti.dag_id, ti.task_id) == ("retry_once", "flaky") and ti.try_number != 2:
                problems.append(f"retry_once.flaky ended on try {ti.try_number}, expected try 2")
            if not ti.external_executor_id:
                problems.append(f"{ti.dag_id}.{ti.task_id}[{ti.map_index}] has no Batch job id")
                continue
            job_name = (jobs.get(ti.external_executor_id) or {}).get("jobName", "")
            if f"-try{ti.try_number}-" not in job_name:
                problems.append(
                    f"{ti.dag_id}.{ti.task_id}[{ti.map_index}] ended on try {ti.try_number} "
                    f"but points at job {ti.external_executor_id} ({job_name or 'unknown'})"
                )
    return problems


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_demo(dags_folder: Path, database: str = "sqlite") -> int:
    _say(f"Starting the local Batch and Airflow 3 ({database}) with the DAGs in {dags_folder} ...")
    try:
        with DevStack(dags_folder, database=database) as stack:
            _say(f"Stack ready in {stack.startup_seconds:.1f}s (files in {stack.stack_dir})")
            started = time.monotonic()
            runs = {dag_id: stack.trigger(dag_id) for dag_id in DEMO_DAGS}
            _say("Triggered " + ", ".join(runs) + "; waiting for the runs to finish ...")
            results = [
                RunResult(
                    dag_id,
                    run_id,
                    stack.wait_for_run(dag_id, run_id, RUN_TIMEOUT_SECONDS),
                    stack.task_instances(dag_id, run_id),
                )
                for dag_id, run_id in runs.items()
            ]
            elapsed = time.monotonic() - started
            _say(f"All runs finished in {elapsed:.1f}s; waiting for their Batch jobs to end ...")
            tis = [ti for result in results for ti in result.task_instances]
            jobs = stack.wait_for_jobs(ti.external_executor_id for ti in tis if ti.external_executor_id)
    except StackError as error:
        _say(f"The demo could not complete: {error}")
        return 2
    print(render_table(summary_rows(tis, jobs)))
    problems = outcome_problems(results, jobs)
    if problems:
        print("\nUnexpected outcome:\n" + "\n".join(f"  - {problem}" for problem in problems))
        return 1
    print(f"\nAll {len(results)} DAG runs succeeded; retry_once.flaky succeeded on try 2.")
    return 0
