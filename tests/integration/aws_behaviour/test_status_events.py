"""Job status from Batch job state-change events on SQS, with DescribeJobs as the safety net."""

from __future__ import annotations

import logging
import time

import pytest

from airflow_batch_executor.requests import task_specs as task_specs_module

from ..helpers import final_states, finished, pump, python_command, queue, workload

SCRIPTS = {"ok": "print('ok')", "boom": "raise SystemExit(3)", "slow": "import time; time.sleep(1)"}


@pytest.fixture(autouse=True)
def commands(monkeypatch, event_mode):
    monkeypatch.setattr(
        task_specs_module, "workload_command", lambda w: python_command(SCRIPTS[w.ti.task_id])
    )
    event_mode.clear_api_calls()


def describe_calls(batch_env) -> int:
    return batch_env.api_calls().get("describejobs", 0)


def test_events_bring_every_outcome_without_describe_jobs(make_executor, event_mode):
    executor = make_executor()
    items = [workload("ok" if n % 2 else "boom", run_id=f"events-{n}") for n in range(6)]
    queue(executor, *items)
    events = pump(executor, finished(*(item.ti.key for item in items)))
    assert final_states(events) == {
        item.ti.key: "success" if item.ti.task_id == "ok" else "failed" for item in items
    }
    assert "exit code 3" in next(info for _, state, info in events if state == "failed")
    assert describe_calls(event_mode) == 0
    calls = event_mode.api_calls()
    assert calls["receivemessage"] >= 1 and calls["deletemessagebatch"] >= 1


def test_duplicated_and_reordered_events_report_each_outcome_once(make_executor, event_mode):
    event_mode.faults.duplicate_events("dag-*", count=None, copies=3)
    event_mode.faults.reorder_events("dag-*", count=None, status="RUNNING")
    event_mode.faults.delay_events("dag-*", count=None, status="STARTING", seconds=0.5)
    executor = make_executor()
    items = [workload("ok", run_id="dup-ok"), workload("boom", run_id="dup-boom")]
    queue(executor, *items)
    events = pump(executor, finished(*(item.ti.key for item in items)))
    pump(executor, lambda ev: True, timeout=3)  # late copies arrive after the outcome
    for item in items:
        states = [state for key, state, _ in events if key == item.ti.key]
        assert states == ["running", "success" if item.ti.task_id == "ok" else "failed"]
    assert describe_calls(event_mode) == 0
    assert len(executor.jobs.tracker) == 0


def test_a_dropped_final_event_is_caught_by_reconciliation(make_executor, event_mode, monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__STATUS_RECONCILE_INTERVAL", "1")
    event_mode.faults.drop_events("dag-slow-*", count=None, status="SUCCEEDED")
    executor = make_executor()
    item = workload("slow", run_id="dropped")
    queue(executor, item)
    with caplog.at_level(logging.INFO, logger="airflow_batch_executor"):
        events = pump(executor, finished(item.ti.key))
    assert final_states(events) == {item.ti.key: "success"}
    assert describe_calls(event_mode) >= 1
    assert "SUCCEEDED: its status event was lost or late" in caplog.text


def test_a_queue_that_stops_answering_falls_back_to_polling_with_a_warning(make_executor, event_mode, caplog):
    executor = make_executor()
    event_mode.faults.throttle(
        count=None, operation="ReceiveMessage", error_code="InternalError", status_code=500
    )
    item = workload("slow", run_id="queue-down")
    queue(executor, item)
    with caplog.at_level(logging.INFO, logger="airflow_batch_executor"):
        events = pump(executor, finished(item.ti.key))
        assert final_states(events) == {item.ti.key: "success"}
        assert "does not answer" in caplog.text and "falling back to DescribeJobs" in caplog.text
        assert describe_calls(event_mode) >= 3

        event_mode.faults.clear()
        pump(
            executor, lambda ev: "answers again; job status comes from its events" in caplog.text, timeout=40
        )
    event_mode.clear_api_calls()
    after = workload("ok", run_id="queue-back")
    queue(executor, after)
    events = pump(executor, finished(after.ti.key))
    assert final_states(events) == {after.ti.key: "success"}
    assert describe_calls(event_mode) == 0


def test_events_for_jobs_another_scheduler_tracks_are_left_for_it(make_executor, event_mode, monkeypatch):
    """Two schedulers share the deployment's queue: every task finishes once, from events.

    An event that reaches the wrong scheduler every time it is handed out is at last dropped, and
    then reconciliation finds its job: rare, so DescribeJobs stays far below polling's dozens of calls.
    """
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__STATUS_RECONCILE_INTERVAL", "5")
    first, second = make_executor(), make_executor()
    mine = [workload("ok", run_id=f"first-{n}") for n in range(3)]
    theirs = [workload("ok", run_id=f"second-{n}") for n in range(3)]
    queue(first, *mine)
    queue(second, *theirs)
    outcomes: dict = {}
    for _ in range(600):
        for executor in (first, second):
            executor.heartbeat()
            for key, (state, _) in executor.get_event_buffer().items():
                outcomes.setdefault(key, []).append(str(state))
        if all(outcomes.get(item.ti.key, [])[-1:] == ["success"] for item in mine + theirs):
            break
        time.sleep(0.1)
    outcomes = {key: [state for state in states if state != "running"] for key, states in outcomes.items()}
    assert outcomes == {item.ti.key: ["success"] for item in mine + theirs}
    assert describe_calls(event_mode) <= 6
