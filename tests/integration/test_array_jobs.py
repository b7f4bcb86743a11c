"""Mapped instances that wait together go to the local Batch as one array job (``array_jobs``): one
SubmitJob for the group, each child tracked and reported as its own task with its own id, each running
the workload delivered to its own ECS task once it starts, and nothing left in S3 afterwards."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_batch_executor import supervisor as supervisor_module

from .helpers import (
    MINTS,
    describe,
    final_states,
    finished,
    pump,
    queue,
    ti_for,
    wait_until,
    whole_log,
    workload,
)
from .test_s3_transport import fake_report

SIBLINGS = 6


@pytest.fixture
def arrays_on(batch_env, s3_mode, monkeypatch):
    """One submit thread, and every SubmitJob slowed, so the siblings queued while a first task is being
    submitted are all due together when the thread is free: they go as one array."""
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__ARRAY_JOBS", "True")
    monkeypatch.setattr(supervisor_module, "submit_threads", lambda options: 1)
    batch_env.faults.latency(1.0, "SubmitJob")
    return s3_mode


def queue_behind_a_gate(executor, batch_env, run_id: str, size: int) -> tuple[Any, list[Any]]:
    """A plain task first, then ``size`` mapped siblings once the gate's slowed SubmitJob holds the one
    submit thread: due together when it is free, the siblings go as one array."""
    gate = workload("gate", run_id=run_id)
    queue(executor, gate)
    pump(executor, lambda _: bool(batch_env.api_calls().get("submitjob")), timeout=30)
    siblings = [workload("ok", run_id=run_id, map_index=index) for index in range(size)]
    queue(executor, *siblings)
    return gate, siblings


def test_waiting_siblings_run_as_one_array_each_child_its_own_task(make_executor, batch_env, arrays_on):
    """Child 1 fails before its container starts (sent again alone, as a plain job), child 2's task exits
    1 (its try fails), child 3 waits and is revoked (only it is terminated), the others succeed; each
    outcome is its own child's."""
    batch_env.faults.fail_before_start(f"*-m0-{SIBLINGS - 1}:1", count=1)
    batch_env.faults.fail_after_start(f"*-m0-{SIBLINGS - 1}:2", count=1, exit_code=1)
    batch_env.faults.stuck_in_runnable(f"*-m0-{SIBLINGS - 1}:3", count=1)
    executor = make_executor()
    gate, siblings = queue_behind_a_gate(executor, batch_env, "arrays", SIBLINGS)
    keys = [item.ti.key for item in siblings]
    revoked = keys.pop(3)
    events = pump(executor, finished(gate.ti.key, *keys))
    expected = {key: "success" for key in [gate.ti.key, *keys]}
    expected[keys[2]] = "failed"
    assert final_states(events) == expected
    [waiting] = {info for key, state, info in events if key == revoked and state == "running"}
    executor.revoke_task(ti=ti_for(siblings[3], waiting))
    assert describe(batch_env, waiting)["status"] == "FAILED", "revoke terminates the child before it returns"
    events += pump(executor, lambda _: describe(batch_env, waiting.rpartition(":")[0])["status"] == "FAILED")
    assert not [event for event in events if event[0] == revoked and event[1] != "running"]
    siblings.pop(3)

    gate_request, array_request, alone = batch_env.submitted_requests()
    assert "arrayProperties" not in gate_request and "arrayProperties" not in alone
    assert array_request["arrayProperties"] == {"size": SIBLINGS}
    assert array_request["jobName"].endswith(f"-m0-{SIBLINGS - 1}")
    assert alone["tags"]["airflow.map_index"] == "1", "the child that failed before starting went alone"
    outcomes = {key: info for key, state, info in events if state in ("success", "failed") and key in keys}
    parent_id = outcomes[keys[0]].rpartition(":")[0]
    parent = describe(batch_env, parent_id)
    assert parent["arrayProperties"]["size"] == SIBLINGS
    assert "exit code 1" in outcomes[keys[2]] and f"{parent_id}:2" in outcomes[keys[2]]
    assert parent["status"] == "FAILED" and parent["arrayProperties"]["statusSummary"]["FAILED"] == 3
    for key, item in zip(keys, siblings, strict=True):
        index = key.map_index
        running = [info for k, state, info in events if k == key and state == "running"]
        if index == 1:
            assert running[0] == f"{parent_id}:1" and running[-1] == outcomes[key] != running[0]
            job = outcomes[key]
        else:
            job = f"{parent_id}:{index}"
            assert set(running) == {job}
        if index != 2:
            assert outcomes[key] == job
        report = fake_report("\n".join(whole_log(batch_env, job)))
        assert report["task_id"] == "ok"
        if MINTS:  # the token it was given was signed for this mapped instance
            assert report["sub"] == str(item.ti.id)
    wait_until(lambda: arrays_on.objects() == [])  # every workload, marker and manifest removed


def test_a_new_scheduler_adopts_every_child_of_an_array_whose_ids_were_never_saved(
    make_executor, batch_env, arrays_on
):
    """The scheduler stopped after the array's SubmitJob, before Airflow stored any child's id: the next
    one finds each child through the array's name and manifest, and nothing is submitted again."""
    size = 3
    batch_env.faults.stuck_in_runnable(f"*-m0-{size - 1}:*", count=None)
    old = make_executor()
    _, siblings = queue_behind_a_gate(old, batch_env, "adopt", size)
    keys = [item.ti.key for item in siblings]
    events = pump(old, lambda ev: {key for key, state, _ in ev if state == "running"} >= set(keys))
    children = {key: info for key, state, info in events if state == "running" and key in keys}
    old._stop(terminate_jobs=False)

    new = make_executor()
    assert new.try_adopt_task_instances([ti_for(item, None) for item in siblings]) == []
    pump(new, lambda _: all(new.jobs.tracker.for_key(key) is not None for key in keys))
    assert {key: new.jobs.tracker.for_key(key).job_id for key in keys} == children
    assert len(batch_env.submitted_requests()) == 2, "the gate's job and the array: nothing sent again"
    for item in siblings:
        new.revoke_task(ti=ti_for(item, children[item.ti.key]))
    assert {describe(batch_env, child)["status"] for child in children.values()} == {"FAILED"}
