"""Inline mode: the executor's workload commands run in the job's thread, with the real S3 fetch."""

from __future__ import annotations

import io
import json
import threading
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from waiting import describe, events_of, log_messages, wait_for_status, wait_until

from batch_devtools.local_batch import HOST_TERMINATED_REASON, LocalBatch, LocalBatchControl
from batch_devtools.local_batch.inline import STOPPED_BEFORE_THE_TASK_EXIT, inline_workload, run_inline

BOOTSTRAP = ["python", "-m", "airflow_batch_executor.in_job.bootstrap"]
TASK_SDK = ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string"]
CALLBACK_RUNNER = ["python", "-m", "airflow_batch_executor.in_job.callback_runner", "--json-string"]


@pytest.fixture(autouse=True)
def inline(local_batch: LocalBatch) -> None:
    local_batch.settings.job_mode = "inline"
    local_batch.settings.inline_run_seconds = 0.05


def task_workload(task_id: str, try_number: int = 1) -> dict[str, Any]:
    return {
        "type": "ExecuteTask",
        "token": f"secret-{uuid.uuid4().hex}",
        "ti": {
            "id": str(uuid.uuid4()),
            "dag_id": "soak",
            "task_id": task_id,
            "run_id": "manual__1",
            "map_index": 3,
            "try_number": try_number,
            "pool_slots": 1,
        },
    }


def put_workload(lb: LocalBatch, workload: dict[str, Any]) -> str:
    key = f"workloads/{uuid.uuid4().hex}.json"
    lb.client("s3").put_object(
        Bucket=lb.environment.workload_bucket, Key=key, Body=json.dumps(workload).encode()
    )
    return f"s3://{lb.environment.workload_bucket}/{key}"


def submit(lb: LocalBatch, command: list[str], prefix: str = "inline", **kwargs: Any) -> str:
    return lb.client("batch").submit_job(
        jobName=f"{prefix}-{uuid.uuid4().hex[:8]}",
        jobQueue=lb.job_queue,
        jobDefinition=lb.job_definition,
        containerOverrides={"command": command},
        **kwargs,
    )["jobId"]


def running_inline(lb: LocalBatch, batch: Any, prefix: str = "inline", **kwargs: Any) -> str:
    """A job whose inline run lasts until something ends it (the run is 30 s long)."""
    lb.settings.inline_run_seconds = 30
    job_id = submit(lb, [*BOOTSTRAP, put_workload(lb, task_workload("long"))], prefix, **kwargs)
    wait_until(lambda: events_of(lb, job_id, "workload_run"), "the workload runs")
    return job_id


def test_the_s3_bootstrap_fetches_consumes_and_records_its_workload(
    local_batch: LocalBatch, batch: Any
) -> None:
    workload = task_workload("extract")
    uri = put_workload(local_batch, workload)
    job_id = submit(local_batch, [*BOOTSTRAP, uri])

    job = wait_for_status(batch, job_id)

    assert job["status"] == "SUCCEEDED" and job["container"]["exitCode"] == 0
    [fetch] = events_of(local_batch, job_id, "fetch")
    assert (fetch["attempt"], fetch["uri"], fetch["outcome"]) == (1, uri, "ok")
    [run] = events_of(local_batch, job_id, "workload_run")
    ti = workload["ti"]
    assert run == {
        "event": "workload_run",
        "at": run["at"],
        "jobId": job_id,
        "attempt": 1,
        "uri": uri,
        "type": "ExecuteTask",
        "dag_id": "soak",
        "task_id": "extract",
        "run_id": "manual__1",
        "map_index": 3,
        "try_number": 1,
        "ti_id": ti["id"],
        "token": workload["token"],
    }
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    with pytest.raises(ClientError, match="404"):
        local_batch.client("s3").head_object(Bucket=bucket, Key=key)
    assert [(e["event"], e.get("found")) for e in local_batch.history() if e.get("key") == key] == [
        ("object_put", None),
        ("object_get", True),
        ("object_delete", True),
    ]
    messages = log_messages(local_batch, job["container"]["logStreamName"])
    assert messages == [f"inline run of {uri}"]
    assert workload["token"] not in json.dumps(job)
    assert (
        next(j for j in LocalBatchControl(local_batch.endpoint_url).jobs() if j["jobId"] == job_id)["pid"]
        is None
    )


def test_a_missing_object_fails_the_started_attempt_with_the_bootstraps_exit_code(
    local_batch: LocalBatch, batch: Any
) -> None:
    uri = f"s3://{local_batch.environment.workload_bucket}/workloads/never-written.json"
    job = wait_for_status(batch, submit(local_batch, [*BOOTSTRAP, uri]))

    assert (job["status"], job["container"]["exitCode"]) == ("FAILED", 65) and "startedAt" in job
    [fetch] = events_of(local_batch, job["jobId"], "fetch")
    assert fetch["outcome"] == 65 and events_of(local_batch, job["jobId"], "workload_run") == []
    assert "does not exist" in log_messages(local_batch, job["container"]["logStreamName"])[-1]


def test_s3_faults_reach_the_bootstrap(local_batch: LocalBatch, batch: Any) -> None:
    uri = put_workload(local_batch, task_workload("denied"))
    local_batch.faults.throttle(count=None, operation="GetObject", error_code="AccessDenied")

    job = wait_for_status(batch, submit(local_batch, [*BOOTSTRAP, uri]))

    assert job["container"]["exitCode"] == 66
    assert events_of(local_batch, job["jobId"], "fetch")[0]["outcome"] == 66


@pytest.mark.parametrize("runner", [TASK_SDK, CALLBACK_RUNNER])
def test_command_mode_records_the_workload_from_its_json(
    local_batch: LocalBatch, batch: Any, runner: list[str]
) -> None:
    if runner is CALLBACK_RUNNER:
        workload = {
            "type": "ExecuteCallback",
            "token": "callback-token",
            "callback": {"id": "cb-1", "data": {}},
        }
    else:
        workload = task_workload("load", try_number=2)
    job = wait_for_status(batch, submit(local_batch, [*runner, json.dumps(workload)]))

    assert job["status"] == "SUCCEEDED"
    assert events_of(local_batch, job["jobId"], "fetch") == []
    [run] = events_of(local_batch, job["jobId"], "workload_run")
    assert (run["uri"], run["type"], run["token"]) == (None, workload["type"], workload["token"])
    if runner is CALLBACK_RUNNER:
        assert run["callback_id"] == "cb-1"
    else:
        assert (run["task_id"], run["try_number"]) == ("load", 2)
    [line] = log_messages(local_batch, job["container"]["logStreamName"])
    assert line.startswith(f"inline run of {workload['type']}") and workload["token"] not in line


def test_other_commands_run_as_processes(local_batch: LocalBatch, batch: Any) -> None:
    job = wait_for_status(batch, submit(local_batch, ["python", "-c", "print('a real process')"]))

    assert job["status"] == "SUCCEEDED"
    assert log_messages(local_batch, job["container"]["logStreamName"]) == ["a real process"]
    assert events_of(local_batch, job["jobId"], "workload_run") == []


def test_terminating_a_running_inline_job_fails_it_with_143(local_batch: LocalBatch, batch: Any) -> None:
    job_id = running_inline(local_batch, batch)

    batch.terminate_job(jobId=job_id, reason="Revoked by the scheduler")
    job = wait_for_status(batch, job_id)

    assert (job["status"], job["statusReason"], job["container"]["exitCode"]) == (
        "FAILED",
        "Revoked by the scheduler",
        143,
    )


def test_an_inline_attempt_times_out(local_batch: LocalBatch, batch: Any) -> None:
    # time_scale=0.02: the 60 s minimum timeout fires after 1.2 s
    job_id = running_inline(local_batch, batch, timeout={"attemptDurationSeconds": 60})

    job = wait_for_status(batch, job_id)

    assert (job["statusReason"], job["container"]["exitCode"]) == (
        "Job attempt duration exceeded timeout",
        143,
    )


def test_a_host_terminated_under_an_inline_job(local_batch: LocalBatch, batch: Any) -> None:
    local_batch.faults.host_terminated(pattern="lost-*", after_seconds=0.2)
    job_id = running_inline(local_batch, batch, prefix="lost")

    job = wait_for_status(batch, job_id)

    assert job["statusReason"] == HOST_TERMINATED_REASON and "exitCode" not in job["container"]


def test_fail_before_start_leaves_the_workload_unfetched(local_batch: LocalBatch, batch: Any) -> None:
    local_batch.faults.fail_before_start(pattern="pull-*")
    uri = put_workload(local_batch, task_workload("never"))

    job = wait_for_status(batch, submit(local_batch, [*BOOTSTRAP, uri], "pull"))

    assert job["statusReason"] == "Task failed to start" and "startedAt" not in job
    assert events_of(local_batch, job["jobId"], "fetch") == []
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    assert local_batch.client("s3").head_object(Bucket=bucket, Key=key)["ContentLength"] > 0


def test_a_stuck_inline_job_runs_once_released(local_batch: LocalBatch, batch: Any) -> None:
    local_batch.faults.stuck_in_runnable(pattern="capacity-*")
    job_id = submit(local_batch, [*BOOTSTRAP, put_workload(local_batch, task_workload("later"))], "capacity")
    wait_until(lambda: describe(batch, job_id).get("statusReason"), "the job waits for capacity")

    assert local_batch.release_stuck_jobs() == [job_id]

    assert wait_for_status(batch, job_id)["status"] == "SUCCEEDED"


def test_only_the_named_stuck_jobs_are_released(local_batch: LocalBatch, batch: Any) -> None:
    local_batch.faults.stuck_in_runnable(pattern="some-*", count=2)
    held = submit(local_batch, [*BOOTSTRAP, put_workload(local_batch, task_workload("held"))], "some")
    freed = submit(local_batch, [*BOOTSTRAP, put_workload(local_batch, task_workload("freed"))], "some")
    wait_until(lambda: set(local_batch.stuck_jobs()) == {held, freed}, "both jobs wait for capacity")

    assert local_batch.release_stuck_jobs([freed, "no-such-job"]) == [freed]

    assert wait_for_status(batch, freed)["status"] == "SUCCEEDED"
    assert local_batch.stuck_jobs() == [held] and describe(batch, held)["status"] == "RUNNABLE"
    batch.terminate_job(jobId=held, reason="done")
    wait_until(lambda: local_batch.stuck_jobs() == [], "a terminated job is no longer stuck")


def test_fail_after_start_fails_a_workload_that_ran(local_batch: LocalBatch, batch: Any) -> None:
    local_batch.faults.fail_after_start(pattern="crash-*", exit_code=2)
    job_id = submit(local_batch, [*BOOTSTRAP, put_workload(local_batch, task_workload("crash"))], "crash")

    job = wait_for_status(batch, job_id)

    assert (job["status"], job["container"]["exitCode"]) == ("FAILED", 2)
    assert len(events_of(local_batch, job_id, "workload_run")) == 1


def test_a_batch_retry_after_start_finds_its_workload_consumed(local_batch: LocalBatch, batch: Any) -> None:
    local_batch.faults.retry_after_start(pattern="twice-*")
    job_id = submit(local_batch, [*BOOTSTRAP, put_workload(local_batch, task_workload("twice"))], "twice")

    job = wait_for_status(batch, job_id)

    assert (job["status"], job["container"]["exitCode"]) == ("FAILED", 65)
    assert [a["statusReason"] for a in job["attempts"]] == [
        HOST_TERMINATED_REASON,
        "Essential container in task exited",
    ]
    assert [(e["attempt"], e["outcome"]) for e in events_of(local_batch, job_id, "fetch")] == [
        (1, "ok"),
        (2, 65),
    ]
    assert [e["attempt"] for e in events_of(local_batch, job_id, "workload_run")] == [1]


def test_retry_strategy_retries_inline_attempts(local_batch: LocalBatch, batch: Any) -> None:
    uri = f"s3://{local_batch.environment.workload_bucket}/workloads/absent.json"
    job = wait_for_status(batch, submit(local_batch, [*BOOTSTRAP, uri], retryStrategy={"attempts": 2}))

    assert [a["container"]["exitCode"] for a in job["attempts"]] == [65, 65]
    assert [e["attempt"] for e in events_of(local_batch, job["jobId"], "fetch")] == [1, 2]


def test_a_job_terminated_while_its_bootstrap_fetches_never_runs_its_task() -> None:
    """On AWS the SIGTERM of TerminateJob reaches the bootstrap before it starts the Task SDK."""
    terminated = threading.Event()
    recorded: list[str] = []

    class S3TerminatedDuringTheRead:
        def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
            terminated.set()
            return {"Body": io.BytesIO(json.dumps(task_workload("late")).encode())}

        def delete_object(self, Bucket: str, Key: str) -> None:
            pass

    runtime = SimpleNamespace(
        s3=S3TerminatedDuringTheRead(),
        history=SimpleNamespace(record=lambda event, **_: recorded.append(event)),
    )
    workload = inline_workload([*BOOTSTRAP, "s3://bucket/workloads/late.json"])
    assert workload is not None

    code = run_inline(runtime, "job-1", 1, workload, lambda line: None, stopped=terminated.is_set)  # type: ignore[arg-type]

    assert (code, recorded) == (STOPPED_BEFORE_THE_TASK_EXIT, ["fetch"])
