"""Live task logs, read by an executor that was never started (as in the api-server)."""

from __future__ import annotations

import time
from types import SimpleNamespace

from airflow_batch_executor.requests import task_specs as task_specs_module
from batch_devtools.local_batch import CAPACITY_REASON

from .helpers import configure_team, describe, pump, python_command, queue, wait_until, workload

CHATTY = "import sys, time\nfor i in range(5):\n    print(f'line {i}', flush=True)\ntime.sleep(30)"


def running_job(make_executor, monkeypatch, run_id):
    monkeypatch.setattr(task_specs_module, "workload_command", lambda w: python_command(CHATTY))
    executor = make_executor()
    item = workload("chatty", run_id=run_id)
    queue(executor, item)
    return pump(executor, lambda ev: bool(ev))[0][2]


def read(make_executor, job_id):
    api_server_executor = make_executor(start=False)
    ti = SimpleNamespace(dag_id="dag", external_executor_id=job_id)  # what get_task_log reads of a ti
    return api_server_executor.get_task_log(ti, 1)


def test_running_task_log_comes_from_cloudwatch(make_executor, batch_env, monkeypatch):
    job_id = running_job(make_executor, monkeypatch, "logs")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        sources, lines = read(make_executor, job_id)
        if len(lines) >= 5:
            break
        time.sleep(0.2)
    assert lines[:5] == [f"line {i}" for i in range(5)]
    assert f"AWS Batch job {job_id}: CloudWatch Logs /aws/batch/job/" in sources[0]
    batch_env.client("batch").terminate_job(jobId=job_id, reason="test done")


def test_log_is_bounded_to_the_newest_lines(make_executor, batch_env, monkeypatch):
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__TASK_LOG_LINES", "2")
    job_id = running_job(make_executor, monkeypatch, "bounded")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        _, lines = read(make_executor, job_id)
        if lines == ["line 3", "line 4"]:
            break
        time.sleep(0.2)
    assert lines == ["line 3", "line 4"]
    batch_env.client("batch").terminate_job(jobId=job_id, reason="test done")


def test_no_stream_yet_and_unknown_job_are_one_line_messages(make_executor, batch_env, monkeypatch):
    batch_env.faults.stuck_in_runnable("dag-chatty-*", count=1, reason=CAPACITY_REASON)
    job_id = running_job(make_executor, monkeypatch, "waiting")
    # The first event comes with the SubmitJob answer; the job reaches RUNNABLE (where it stays) later.
    wait_until(lambda: describe(batch_env, job_id)["status"] == "RUNNABLE")
    sources, lines = read(make_executor, job_id)
    assert lines == [] and sources == [f"AWS Batch job {job_id} is RUNNABLE and has no log stream yet"]
    sources, lines = read(make_executor, "00000000-0000-0000-0000-000000000000")
    assert lines == [] and "no longer exists" in sources[0]
    assert read(make_executor, None) == ([], [])
    batch_env.client("batch").terminate_job(jobId=job_id, reason="test done")


def test_a_teams_task_log_is_read_with_the_teams_settings(make_executor, batch_env, monkeypatch):
    """The api-server's executor has no team: it finds the task's team from its DAG (multi-team mode)."""
    from airflow_batch_executor.airflow_side import adapter

    job_id = running_job(make_executor, monkeypatch, "team-log")
    configure_team(monkeypatch, "team_a", batch_env.settings_env(), task_log_lines="1")
    monkeypatch.setattr(adapter, "team_of_dag", lambda dag_id: "team_a" if dag_id == "dag" else None)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        _, lines = read(make_executor, job_id)
        if lines == ["line 4"]:
            break
        time.sleep(0.2)
    assert lines == ["line 4"], "team_a's task_log_lines (1), not the global default (500)"
    batch_env.client("batch").terminate_job(jobId=job_id, reason="test done")
