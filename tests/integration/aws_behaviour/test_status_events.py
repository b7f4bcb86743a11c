"""Job status from Batch job state-change events on SQS, with DescribeJobs as the safety net."""

from __future__ import annotations

import logging
import time

import pytest

from airflow_batch_executor.requests import task_specs as task_specs_module

from ..helpers import (
    executor_job_id,
    final_states,
    finished,
    pump,
    python_command,
    queue,
    states_of,
    status_messages,
    wait_until,
    workload,
)

SCRIPTS = {"ok": "print('ok')", "boom": "raise SystemExit(3)", "slow": "import time; time.sleep(1)"}


@pytest.fixture(autouse=True)
def commands(monkeypatch, event_mode):
    monkeypatch.setattr(
        task_specs_module, "workload_command", lambda w: python_command(SCRIPTS[w.ti.task_id])
    )
    event_mode.clear_api_calls()


def outcome_status(item) -> str:
    """The Batch status a job of ``SCRIPTS`` ends with."""
    return "FAILED" if item.ti.task_id == "boom" else "SUCCEEDED"


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
    assert event_mode.api_calls()["receivemessage"] >= 1
    # Handled messages are deleted by the receiver's own thread, after the heartbeat that handled them.
    wait_until(lambda: event_mode.api_calls().get("deletemessagebatch", 0) >= 1)


def test_duplicated_and_reordered_events_report_each_outcome_once(make_executor, event_mode, monkeypatch):
    event_mode.faults.duplicate_events("dag-*", count=None, copies=3)
    event_mode.faults.reorder_events("dag-*", count=None, status="RUNNING")
    event_mode.faults.delay_events("dag-*", count=None, status="STARTING", seconds=0.5)
    executor = make_executor()
    taken_in = status_messages(monkeypatch, executor)
    items = [workload("ok", run_id="dup-ok"), workload("boom", run_id="dup-boom")]
    queue(executor, *items)
    events = pump(executor, finished(*(item.ti.key for item in items)))
    # Late copies arrive after the outcome: heartbeat until every message the faults publish was taken
    # in (three copies of each event, except RUNNING: held back to be reordered, it is sent once), then
    # once more to hand the last over, so the check below covers every copy, however late.
    published = {"SUBMITTED": 3, "PENDING": 3, "RUNNABLE": 3, "STARTING": 3, "RUNNING": 1}
    ends = {executor_job_id([e for e in events if e[0] == item.ti.key]): item for item in items}

    def every_copy_taken_in(_events: list) -> bool:
        return all(
            len(taken_in.get((job_id, status), ())) >= copies
            for job_id, item in ends.items()
            for status, copies in {**published, outcome_status(item): 3}.items()
        )

    events += pump(executor, every_copy_taken_in)
    events += pump(executor, lambda ev: True)
    for item in items:
        outcome = "success" if item.ti.task_id == "ok" else "failed"
        assert states_of(events, item.ti.key) == ["running", outcome]
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


def test_a_queue_that_stops_answering_falls_back_to_polling_with_a_warning(
    make_executor, event_mode, caplog, monkeypatch, tmp_path
):
    # The job runs until the test lets it end (or for 2 minutes, if the test failed): it cannot end
    # before polling was seen at work, however slow the machine is.
    gate = tmp_path / "go"
    gated = (
        "import os, time\n"
        "deadline = time.time() + 120\n"
        f"while not os.path.exists({str(gate)!r}) and time.time() < deadline:\n"
        "    time.sleep(0.05)\n"
    )
    monkeypatch.setitem(SCRIPTS, "gated", gated)
    executor = make_executor()
    event_mode.faults.throttle(
        count=None, operation="ReceiveMessage", error_code="InternalError", status_code=500
    )
    item = workload("gated", run_id="queue-down")
    with caplog.at_level(logging.INFO, logger="airflow_batch_executor"):
        # The job is queued once the fallback is in force: the receiver notices only when its long poll
        # under way ends, so what follows is polling's alone, whenever that was.
        pump(executor, lambda ev: "falling back to DescribeJobs" in caplog.text)
        assert "does not answer" in caplog.text
        event_mode.clear_api_calls()
        queue(executor, item)
        # Reconciliation is 60 s away: DescribeJobs of the job, again and again while it runs, is polling.
        events = pump(executor, lambda ev: describe_calls(event_mode) >= 3)
        assert final_states(events) == {}
        gate.touch()
        events += pump(executor, finished(item.ti.key))
        assert final_states(events) == {item.ti.key: "success"}

        event_mode.faults.clear()
        # The receiver's retry pause has grown (up to RETRY_MAX_SECONDS, 30 s) while the queue was down:
        # the default timeout leaves room for it and a loaded machine.
        pump(executor, lambda ev: "answers again; job status comes from its events" in caplog.text)
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
    interval = 5
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__STATUS_RECONCILE_INTERVAL", str(interval))
    first, second = make_executor(), make_executor()
    mine = [workload("ok", run_id=f"first-{n}") for n in range(3)]
    theirs = [workload("ok", run_id=f"second-{n}") for n in range(3)]
    started = time.monotonic()
    queue(first, *mine)
    queue(second, *theirs)
    outcomes: dict = {}
    deadline = started + 120  # a bound on failure only: the loop ends once every task has finished
    while time.monotonic() < deadline:
        for executor in (first, second):
            executor.heartbeat()
            for key, (state, _) in executor.get_event_buffer().items():
                outcomes.setdefault(key, []).append(str(state))
        if all(outcomes.get(item.ti.key, [])[-1:] == ["success"] for item in mine + theirs):
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    outcomes = {key: [state for state in states if state != "running"] for key, states in outcomes.items()}
    assert outcomes == {item.ti.key: ["success"] for item in mine + theirs}
    # Reconciliation describes a job only after Batch said nothing of it for `interval` seconds, and
    # then not again for as long: at most once per job per interval, however long a loaded machine
    # made the test (none at all when it took less than one). Polling instead describes every job of a
    # scheduler every status_poll_interval (0.1 s here): dozens of calls a second.
    reconciliations = len(mine + theirs) * int(elapsed // interval)
    assert describe_calls(event_mode) <= reconciliations, f"{elapsed:.1f}s"


CAPACITY = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested"


def waiting_rows(executor) -> list[str]:
    return [log.extra for log in executor._task_event_logs if log.event == "batch job waiting"]


def test_a_blocked_queues_reason_reaches_the_waiting_tasks_event_log_through_the_status_queue(
    make_executor, event_mode
):
    event_mode.faults.block_queue(event_mode.job_queue, CAPACITY)
    executor = make_executor()
    item = workload("ok", run_id="blocked")
    queue(executor, item)
    pump(executor, lambda _: waiting_rows(executor))
    [row] = waiting_rows(executor)
    job_id = executor.jobs.tracker.for_key(item.ti.key).job_id
    assert (
        row.startswith(f"Batch job {job_id} (")
        and f"waits in RUNNABLE on job queue {event_mode.job_queue}" in row
    )
    assert CAPACITY in row and "allow more instance types" in row
    assert describe_calls(event_mode) == 0, "the reason came with the Batch Job Queue Blocked event"
    event_mode.faults.block_queue(
        event_mode.job_queue, "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - still none"
    )
    pump(executor, lambda _: len(waiting_rows(executor)) == 2)
    event_mode.faults.unblock_queue(event_mode.job_queue)
    events = pump(executor, finished(item.ti.key))
    assert final_states(events) == {item.ti.key: "success"}
    assert len(waiting_rows(executor)) == 2, "a reason written once is not written again"


def test_a_misconfiguration_in_a_blocked_event_terminates_the_job_and_fails_the_task(
    make_executor, event_mode
):
    reason = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement is not supported"
    event_mode.faults.block_queue(event_mode.job_queue, reason)
    executor = make_executor()
    item = workload("ok", run_id="misconfigured")
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    assert final_states(events) == {item.ti.key: "failed"}
    failure = next(info for key, state, info in events if state == "failed")
    assert (
        "can never start" in failure
        and "no instance type in the queue's compute environments fits" in failure
    )
    assert describe_calls(event_mode) == 0
    wait_until(lambda: event_mode.api_calls().get("terminatejob", 0) >= 1)
