"""The ``queue_fallbacks`` ladder through the local Batch: Spot reclaims, counted across tries and
scheduler restarts, send a task instance's next job to the fallback queue."""

from __future__ import annotations

import argparse
import json
import uuid

import pytest

from airflow_batch_executor.cli import commands
from airflow_batch_executor.errors import HealthCheckError, OptionError
from airflow_batch_executor.requests import task_specs as task_specs_module

from ..helpers import final_states, finished, pump, python_command, queue, workload

RECLAIMED_HOST = "i-0123456789abcdef0"
"""The instance the local Batch's ``host_terminated`` fault names."""


@pytest.fixture(autouse=True)
def short_jobs(monkeypatch):
    monkeypatch.setattr(
        task_specs_module, "workload_command", lambda w: python_command("import time; time.sleep(1)")
    )


def ladder(monkeypatch, batch_env, after_reclaims: int) -> None:
    rungs = {batch_env.job_queue: {"fallback": batch_env.second_job_queue, "after_reclaims": after_reclaims}}
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__QUEUE_FALLBACKS", json.dumps(rungs))


@pytest.fixture
def run_id() -> str:
    """A DAG run of this test's own: job names, hence the reclaims found by them, are per run and try."""
    return f"spot-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def run_try(run_id):
    """Runs a try of task ``spotty`` of this test's run to its end; returns its final state."""

    def run(executor, try_number: int) -> str:
        item = workload("spotty", run_id=run_id, try_number=try_number)
        queue(executor, item)
        return final_states(pump(executor, finished(item.ti.key)))[item.ti.key]

    return run


def queues_by_try(batch_env) -> list[tuple[str, str]]:
    """(try, job queue) of every job submitted, in order."""
    return [
        (request["tags"]["airflow.try_number"], request["jobQueue"])
        for request in batch_env.submitted_requests()
    ]


def rows(executor, event: str) -> list[str]:
    return [log.extra for log in executor._task_event_logs if log.event == event]


def test_the_try_after_enough_reclaims_runs_on_the_fallback_queue(
    make_executor, batch_env, monkeypatch, run_try
):
    ladder(monkeypatch, batch_env, after_reclaims=2)
    batch_env.faults.host_terminated("*spotty-try[12]-*", count=None)
    executor = make_executor()
    assert run_try(executor, 1) == "failed"
    assert run_try(executor, 2) == "failed"
    assert run_try(executor, 3) == "success"
    spot, on_demand = batch_env.job_queue, batch_env.second_job_queue
    assert queues_by_try(batch_env) == [("1", spot), ("2", spot), ("3", on_demand)]
    reclaims = rows(executor, "batch job reclaimed")
    assert len(reclaims) == 2 and all(f"Spot reclaimed instance {RECLAIMED_HOST}" in row for row in reclaims)
    assert f"its next job goes to {on_demand}" in reclaims[0]
    [fallback] = rows(executor, "batch job fallback")
    assert fallback.startswith(
        f"Spot reclaims send this task instance's job to job queue {on_demand} instead of {spot}"
    )
    assert f"2 reclaimed on {spot}" in fallback


def test_schedulers_restarted_between_tries_count_the_earlier_tries_reclaims_by_their_names(
    make_executor, batch_env, monkeypatch, run_try
):
    """Each try runs under a new scheduler: nothing is remembered, every count comes from ListJobs."""
    ladder(monkeypatch, batch_env, after_reclaims=2)
    batch_env.faults.host_terminated("*spotty-try[12]-*", count=None)
    outcomes = []
    for try_number in (1, 2, 3):
        executor = make_executor()
        outcomes.append(run_try(executor, try_number))
        executor._stop(terminate_jobs=False)
    assert outcomes == ["failed", "failed", "success"]
    spot, on_demand = batch_env.job_queue, batch_env.second_job_queue
    assert queues_by_try(batch_env) == [("1", spot), ("2", spot), ("3", on_demand)]
    [fallback] = rows(executor, "batch job fallback")
    assert f"2 reclaimed on {spot}" in fallback


def test_a_job_reclaimed_before_it_started_is_resubmitted_to_the_fallback_within_its_try(
    make_executor, batch_env, monkeypatch, run_try
):
    ladder(monkeypatch, batch_env, after_reclaims=1)
    reason = f"Host EC2 (instance {RECLAIMED_HOST}) terminated."
    batch_env.faults.fail_before_start("*spotty-try1-*", count=1, reason=reason)
    executor = make_executor()
    assert run_try(executor, 1) == "success"
    assert queues_by_try(batch_env) == [("1", batch_env.job_queue), ("1", batch_env.second_job_queue)]
    assert len(rows(executor, "batch job reclaimed")) == 1
    assert len(rows(executor, "batch job resubmitted")) == 1
    assert len(rows(executor, "batch job fallback")) == 1


def test_a_ladder_that_loops_stops_start_up_naming_the_option(make_executor, batch_env, monkeypatch):
    loop = {"a": {"fallback": "b"}, "b": {"fallback": "a"}}
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__QUEUE_FALLBACKS", json.dumps(loop))
    executor = make_executor(start=False)
    with pytest.raises(OptionError, match=r"\[aws_batch_executor\] queue_fallbacks has a loop \(a → b → a\)"):
        executor.start()


def test_a_fallback_queue_that_does_not_exist_stops_start_up_naming_the_option(
    make_executor, batch_env, monkeypatch
):
    rungs = {batch_env.job_queue: {"fallback": "no-such-queue"}}
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__QUEUE_FALLBACKS", json.dumps(rungs))
    executor = make_executor(start=False)
    with pytest.raises(HealthCheckError) as raised:
        executor.start()
    message = str(raised.value)
    assert (
        "[FAILED] fallback job queue (queue_fallbacks): job queue 'no-such-queue' does not exist" in message
    )
    assert (
        "or in queue_fallbacks in [aws_batch_executor] or AIRFLOW__AWS_BATCH_EXECUTOR__QUEUE_FALLBACKS name"
        in message
    )


def test_render_shows_the_queue_the_ladder_chooses_for_a_try_and_why(
    make_executor, batch_env, monkeypatch, capsys, run_try, run_id
):
    from airflow.sdk import BaseOperator

    ladder(monkeypatch, batch_env, after_reclaims=1)
    batch_env.faults.host_terminated("*spotty-try1-*", count=None)
    assert run_try(make_executor(), 1) == "failed"
    monkeypatch.setattr(commands, "_task", lambda dag_id, task_id: BaseOperator(task_id="spotty"))
    capsys.readouterr()
    for try_number, job_queue in ((1, batch_env.job_queue), (2, batch_env.second_job_queue)):
        args = argparse.Namespace(
            dag_id="dag", task_id="spotty", run_id=run_id, map_index=-1, try_number=try_number,
            offline=False, team=None, verbose=None,
        )  # fmt: skip
        commands.render(args)
        rendered = capsys.readouterr()
        assert json.loads(rendered.out)["jobQueue"] == job_queue
    assert f"1 reclaimed on {batch_env.job_queue} (fallback after 1)" in rendered.err
