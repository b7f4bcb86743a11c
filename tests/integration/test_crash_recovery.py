"""A scheduler killed between SubmitJob returning and the job id reaching the database.

The child process runs the executor and SIGKILLs itself the moment a submission result arrives,
before ``running_state`` could hand the job id to the scheduler. A new executor must find that job
by its deterministic name and adopt it: the task instance try runs exactly once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from airflow_batch_executor.requests import task_specs as task_specs_module

from .helpers import final_states, finished, pump, python_command, ti_for, workload

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    sys.path.insert(0, {root!r})
    from airflow_batch_executor.requests import task_specs as task_specs_module
    from airflow_batch_executor.executor import AwsBatchExecutor
    from airflow_batch_executor.supervisor import JobSupervisor
    from tests.integration.helpers import python_command, workload

    task_specs_module.workload_command = lambda w: python_command("import time; time.sleep(1); print('ran')")
    original = JobSupervisor._on_submit_result

    def die_after_submit(self, result):
        if result.job_id:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, result)

    JobSupervisor._on_submit_result = die_after_submit
    executor = AwsBatchExecutor()
    executor.start()
    executor.queue_workload(workload("crash", run_id="crash-run"), session=None)
    for _ in range(600):
        executor.heartbeat()
        time.sleep(0.05)
    sys.exit("the executor never received a submission result")
    """
)


def test_job_submitted_just_before_a_crash_is_adopted_not_resubmitted(
    make_executor, batch_env, tmp_path, monkeypatch
):
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=str(ROOT)))
    child = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    [request] = batch_env.submitted_requests()

    monkeypatch.setattr(task_specs_module, "workload_command", lambda w: python_command("print('never')"))
    item = workload("crash", run_id="crash-run")
    ti = item.ti
    orphan = ti_for(item)
    executor = make_executor()
    assert executor.try_adopt_task_instances([orphan]) == []
    events = pump(executor, finished(ti.key))
    assert final_states(events) == {ti.key: "success"}
    [job_id] = {info for _, state, info in events if state == "running"}
    assert [r["jobName"] for r in batch_env.submitted_requests()] == [request["jobName"]]
    [job] = batch_env.client("batch").describe_jobs(jobs=[job_id])["jobs"]
    assert job["jobName"] == request["jobName"] and job["status"] == "SUCCEEDED"
