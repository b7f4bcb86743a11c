"""Metrics emitted while real jobs run through the local Batch."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from airflow_batch_executor import metrics
from airflow_batch_executor.requests import task_specs as task_specs_module

from .helpers import Recorder, final_states, finished, pump, python_command, queue, status_messages, workload


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(metrics, "Stats", rec)
    monkeypatch.setattr(task_specs_module, "workload_command", lambda w: python_command("print('m')"))
    return rec


def test_submit_status_retry_and_resubmission_metrics(make_executor, batch_env, recorder):
    batch_env.faults.throttle(count=1, operation="SubmitJob")
    batch_env.faults.fail_before_start("dag-measured-*", count=1)
    executor = make_executor()
    item = workload("measured", run_id="metrics")
    queue(executor, item)
    pump(executor, finished(item.ti.key))
    names = recorder.names()
    expected = {
        "aws_batch_executor.submit.ok",
        "aws_batch_executor.submit.retried.throttled",
        "aws_batch_executor.throttled",
        "aws_batch_executor.submit.latency",
        "aws_batch_executor.resubmitted.transient_before_start",
        "aws_batch_executor.jobs.status.failed",
        "aws_batch_executor.jobs.status.succeeded",
        "aws_batch_executor.sync.duration",
        "aws_batch_executor.jobs.tracked",
    }
    assert expected <= names, expected - names
    assert [count for kind, name, count in recorder.calls if name == "aws_batch_executor.submit.ok"] == [1, 1]


def test_derived_job_definition_metrics(make_executor, batch_env, recorder):
    from airflow_batch_executor import BatchJobOverrides

    config = BatchJobOverrides(image=f"repo/metrics:{id(recorder)}")
    for run_id in ("first", "after-restart"):
        executor = make_executor()
        item = workload("imaged", run_id=run_id, executor_config=config)
        queue(executor, item)
        pump(executor, finished(item.ti.key))
    counts = [
        name for kind, name, _ in recorder.calls if name.startswith("aws_batch_executor.job_definition")
    ]
    assert counts == [
        "aws_batch_executor.job_definition.registered",
        "aws_batch_executor.job_definition.found",
    ]


def test_the_docs_list_every_metric():
    operating = (Path(__file__).resolve().parents[2] / "docs" / "operating.md").read_text()
    for name in metrics.METRICS:
        assert f"`{metrics.PREFIX}.{name}`" in operating, name


def test_status_event_metrics(make_executor, event_mode, recorder, monkeypatch, caplog):
    event_mode.faults.duplicate_events("dag-counted-*", count=1, status="RUNNING")
    event_mode.faults.delay_events("dag-counted-*", count=1, status="PENDING", after_status="RUNNING")
    event_mode.faults.drop_events("dag-counted-*", count=1, status="SUCCEEDED")
    executor = make_executor()
    taken_in = status_messages(monkeypatch, executor)
    item = workload("counted", run_id="event-metrics")
    queue(executor, item)

    def count(name: str) -> int:
        return sum(n for kind, metric, n in recorder.calls if metric == f"aws_batch_executor.{name}")

    # Reconciliation stays 60 s away (event_mode) until every event the faults let through was taken
    # in: one racing events that are merely late on a loaded machine would count misses of its own,
    # and a copy or the overtaken PENDING handled after the job ended would count as untracked. Its
    # SUCCEEDED is dropped, so the job stays tracked meanwhile.
    let_through = {"SUBMITTED": 1, "RUNNABLE": 1, "STARTING": 1, "RUNNING": 2, "PENDING": 1}

    def all_taken_in(_events: list) -> bool:
        job = executor.jobs.tracker.for_key(item.ti.key)
        return job is not None and all(
            len(taken_in.get((job.job_id, status), ())) >= copies for status, copies in let_through.items()
        )

    events = pump(executor, all_taken_in)
    events += pump(executor, lambda ev: True)  # the heartbeat that hands the last of them over
    assert final_states(events) == {}
    # Now the one miss: SUCCEEDED, found by reconciliation (the events told RUNNING, the furthest there is
    # short of it).
    monkeypatch.setattr(executor.jobs, "_reconcile_interval", 1.0)
    with caplog.at_level(logging.INFO, logger="airflow_batch_executor"):
        events += pump(executor, finished(item.ti.key))
    assert final_states(events) == {item.ti.key: "success"}
    assert count("status_events.received") >= 5
    assert count("status_events.duplicate") >= 1, "the RUNNING copy"
    assert count("status_events.stale") >= 1, "the PENDING published after RUNNING"
    assert count("status_events.missed") == 1, "SUCCEEDED, found by reconciliation"
    assert "is SUCCEEDED: its status event was lost or late" in caplog.text
