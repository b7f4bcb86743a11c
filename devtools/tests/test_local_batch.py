"""The local Batch, exercised over real HTTP with boto3 — as the executor will use it."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from waiting import FINAL, describe, take_messages, wait_for_status, wait_until

from batch_devtools.local_batch import (
    CAPACITY_REASON,
    HOST_TERMINATED_REASON,
    MISCONFIGURATION_REASON,
    LocalBatch,
    LocalBatchControl,
    server,
)

# botocore's "max_attempts" counts retries; "total_max_attempts" counts the first call too.
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
SLEEP_FOREVER = ["python", "-c", "import time; print('sleeping', flush=True); time.sleep(60)"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def submit(lb: LocalBatch, batch: Any, name: str, command: list[str] | None = None, **kwargs: Any) -> str:
    overrides = kwargs.pop("containerOverrides", {})
    if command is not None:
        overrides["command"] = command
    return batch.submit_job(
        jobName=name,
        jobQueue=kwargs.pop("jobQueue", lb.job_queue),
        jobDefinition=lb.job_definition,
        containerOverrides=overrides,
        **kwargs,
    )["jobId"]


def log_messages(logs: Any, group: str, stream: str) -> list[str]:
    events = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
    return [event["message"] for event in events]


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for_pid(lb: LocalBatch, job_id: str) -> int:
    return wait_until(lambda: lb.job_pid(job_id), f"job {job_id} has a process")


# --- the ready environment ---------------------------------------------------------------------


def test_ready_environment_exists_in_the_server(local_batch: LocalBatch, batch: Any, logs: Any) -> None:
    env = local_batch.environment
    assert local_batch.endpoint_url.startswith("http://127.0.0.1:") and local_batch.port > 0
    assert local_batch.region == "us-east-1"

    s3 = local_batch.client("s3")
    assert s3.head_bucket(Bucket=env.workload_bucket)["BucketRegion"] == local_batch.region

    compute = batch.describe_compute_environments(computeEnvironments=[env.compute_environment])
    (ce,) = compute["computeEnvironments"]
    assert ce["type"] == "MANAGED" and ce["computeResources"]["type"] == "FARGATE"

    queues = batch.describe_job_queues(jobQueues=[local_batch.job_queue, local_batch.second_job_queue])
    assert sorted(q["jobQueueName"] for q in queues["jobQueues"]) == [
        "airflow-local-queue",
        "airflow-local-queue-2",
    ]
    assert all(
        q["computeEnvironmentOrder"][0]["computeEnvironment"] == ce["computeEnvironmentArn"]
        for q in queues["jobQueues"]
    )

    (definition,) = batch.describe_job_definitions(
        jobDefinitionName=local_batch.job_definition, status="ACTIVE"
    )["jobDefinitions"]
    assert definition["platformCapabilities"] == ["FARGATE"]
    requirements = {r["type"]: r["value"] for r in definition["containerProperties"]["resourceRequirements"]}
    assert requirements == {"VCPU": "0.25", "MEMORY": "512"}
    assert (
        definition["containerProperties"]["logConfiguration"]["options"]["awslogs-group"] == "/aws/batch/job"
    )

    groups = logs.describe_log_groups(logGroupNamePrefix="/aws/batch/job")["logGroups"]
    assert [g["logGroupName"] for g in groups] == ["/aws/batch/job"]

    settings = local_batch.settings_env()
    assert settings["AIRFLOW__AWS_BATCH_EXECUTOR__JOB_QUEUE"] == "airflow-local-queue"
    assert settings["AIRFLOW__AWS_BATCH_EXECUTOR__JOB_DEFINITION"] == "airflow-local-job"
    assert settings["AIRFLOW__AWS_BATCH_EXECUTOR__REGION_NAME"] == "us-east-1"
    assert settings["AWS_ENDPOINT_URL"] == local_batch.endpoint_url
    assert settings["AWS_ACCESS_KEY_ID"] == "testing"


# --- jobs really run -----------------------------------------------------------------------------


def test_hello_job_succeeds_with_exit_code_and_logs(local_batch: LocalBatch, batch: Any, logs: Any) -> None:
    name = unique("hello")
    job_id = submit(local_batch, batch, name, ["python", "-c", "print('hello')"], tags={"team": "data"})

    job = wait_for_status(batch, job_id)

    assert job["status"] == "SUCCEEDED"
    assert job["jobName"] == name
    assert job["statusReason"] == "Essential container in task exited"
    assert job["container"]["exitCode"] == 0
    stream = job["container"]["logStreamName"]
    assert stream == f"airflow-local-job/default/{job_id}"
    assert job["createdAt"] <= job["startedAt"] <= job["stoppedAt"]
    (attempt,) = job["attempts"]
    assert attempt["container"]["exitCode"] == 0
    assert attempt["container"]["logStreamName"] == stream
    assert (attempt["startedAt"], attempt["stoppedAt"]) == (job["startedAt"], job["stoppedAt"])
    assert job["tags"] == {"team": "data"}
    assert job["container"]["command"] == ["python", "-c", "print('hello')"]
    assert log_messages(logs, "/aws/batch/job", stream) == ["hello"]

    (summary,) = batch.list_jobs(
        jobQueue=local_batch.job_queue, filters=[{"name": "JOB_NAME", "values": [name]}]
    )["jobSummaryList"]
    assert summary["status"] == "SUCCEEDED" and summary["container"] == {"exitCode": 0}


def test_failing_command_fails_with_its_exit_code(local_batch: LocalBatch, batch: Any, logs: Any) -> None:
    job_id = submit(
        local_batch,
        batch,
        unique("exit3"),
        ["python", "-c", "import sys; print('oops', file=sys.stderr); sys.exit(3)"],
    )

    job = wait_for_status(batch, job_id)

    assert job["status"] == "FAILED"
    assert job["container"]["exitCode"] == 3
    assert job["attempts"][0]["container"]["exitCode"] == 3
    assert log_messages(logs, "/aws/batch/job", job["container"]["logStreamName"]) == ["oops"]


def test_status_moves_through_every_batch_status(local_batch: LocalBatch, batch: Any) -> None:
    # The statuses are read from the job's state-change events, published as each status begins (with
    # the DescribeJobs record of that moment): polling DescribeJobs instead misses a status whenever one
    # round trip on a loaded machine outlasts it.
    local_batch.settings.publish_events = True
    sqs = local_batch.client("sqs")
    job_id = submit(local_batch, batch, unique("steps"), ["python", "-c", "import time; time.sleep(0.5)"])
    seen: list[str] = []

    def ended() -> bool:
        for body in take_messages(sqs, local_batch.status_queue_url):
            detail = json.loads(body)["detail"]
            if detail["jobId"] == job_id:
                seen.append(detail["status"])
        return bool(seen) and seen[-1] in FINAL

    wait_until(ended, f"job {job_id} published its final status")

    assert seen == ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]
    assert describe(batch, job_id)["status"] == "SUCCEEDED"


def test_jobs_reach_the_local_aws_like_a_job_reaches_its_region(
    local_batch: LocalBatch, batch: Any, logs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    s3 = local_batch.client("s3")
    s3.create_bucket(Bucket="from-a-job")
    script = "import boto3; boto3.client('s3').put_object(Bucket='from-a-job', Key='k', Body=b'hi')"
    job_id = submit(local_batch, batch, unique("aws"), ["python", "-c", script])

    job = wait_for_status(batch, job_id)

    assert job["status"] == "SUCCEEDED", job
    assert s3.get_object(Bucket="from-a-job", Key="k")["Body"].read() == b"hi"


def test_environment_and_interpreter_reach_the_process(
    local_batch: LocalBatch, batch: Any, logs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FROM_SERVER_PROCESS", "server")
    script = (
        "import os, sys; print(sys.executable); "
        "print(*[os.environ[k] for k in ('FROM_SERVER_PROCESS', 'LOCAL_BATCH', 'GREETING', "
        "'AWS_BATCH_JOB_ID', 'AWS_BATCH_JQ_NAME')])"
    )
    job_id = submit(
        local_batch,
        batch,
        unique("env"),
        ["python", "-c", script],
        containerOverrides={
            "environment": [
                {"name": "GREETING", "value": "hi there"},
                {"name": "LOCAL_BATCH", "value": "overridden"},
            ]
        },
        jobQueue=local_batch.second_job_queue,
    )

    job = wait_for_status(batch, job_id)

    assert job["status"] == "SUCCEEDED"
    executable, values = log_messages(logs, "/aws/batch/job", job["container"]["logStreamName"])
    assert executable == sys.executable
    assert values == f"server overridden hi there {job_id} airflow-local-queue-2"
    assert {"name": "GREETING", "value": "hi there"} in job["container"]["environment"]
    assert job["jobQueue"].endswith(":job-queue/airflow-local-queue-2")


def test_logs_are_readable_while_the_job_runs(
    local_batch: LocalBatch, batch: Any, logs: Any, tmp_path: Path
) -> None:
    # The job prints its second line only once the test has read the first (and creates the marker):
    # it is surely still running while its first line is read, however slow the machine is.
    go_on = tmp_path / "go-on"
    script = (
        "import os, time; print('first', flush=True)\n"
        f"while not os.path.exists({str(go_on)!r}): time.sleep(0.02)\n"
        "print('second')"
    )
    job_id = submit(local_batch, batch, unique("live"), ["python", "-c", script])
    stream = wait_for_status(batch, job_id, ("RUNNING",))["container"]["logStreamName"]

    wait_until(
        lambda: log_messages(logs, "/aws/batch/job", stream) == ["first"],
        "the first line is readable while the job runs",
    )
    assert describe(batch, job_id)["status"] == "RUNNING"
    go_on.touch()
    assert wait_for_status(batch, job_id)["status"] == "SUCCEEDED"
    assert log_messages(logs, "/aws/batch/job", stream) == ["first", "second"]


def test_a_missing_executable_fails_to_start(local_batch: LocalBatch, batch: Any) -> None:
    job_id = submit(local_batch, batch, unique("nocmd"), ["no-such-program-for-local-batch", "x"])

    job = wait_for_status(batch, job_id)

    assert job["status"] == "FAILED" and job["statusReason"] == "Task failed to start"
    assert job["container"]["reason"].startswith("CannotStartContainerError: ")
    assert "no-such-program-for-local-batch" in job["container"]["reason"]
    assert "startedAt" not in job and "exitCode" not in job["container"]


def test_dependent_job_fails_when_its_dependency_fails(local_batch: LocalBatch, batch: Any) -> None:
    first = submit(local_batch, batch, unique("dep"), ["python", "-c", "raise SystemExit(1)"])
    second = submit(
        local_batch, batch, unique("after"), ["python", "-c", "print('never')"], dependsOn=[{"jobId": first}]
    )

    job = wait_for_status(batch, second)

    assert job["status"] == "FAILED" and job["statusReason"] == "Dependent Job failed"
    assert "startedAt" not in job and job["attempts"] == []


# --- terminate, cancel, timeout ------------------------------------------------------------------


def test_terminating_a_running_job_kills_its_process(local_batch: LocalBatch, batch: Any) -> None:
    job_id = submit(local_batch, batch, unique("term"), SLEEP_FOREVER)
    wait_for_status(batch, job_id, ("RUNNING",))
    pid = wait_for_pid(local_batch, job_id)
    assert process_exists(pid)

    batch.terminate_job(jobId=job_id, reason="Stopped by the test")
    job = wait_for_status(batch, job_id)

    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Stopped by the test"
    assert job["container"]["exitCode"] == 143
    assert not process_exists(pid)


def test_a_job_ignoring_sigterm_is_killed_after_the_grace_period(
    local_batch: LocalBatch, batch: Any, logs: Any
) -> None:
    local_batch.settings.kill_grace_seconds = 0.3
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('stubborn', flush=True); time.sleep(60)"
    )
    job_id = submit(local_batch, batch, unique("stubborn"), ["python", "-c", script])
    stream = wait_for_status(batch, job_id, ("RUNNING",))["container"]["logStreamName"]
    pid = wait_for_pid(local_batch, job_id)
    wait_until(  # SIGTERM is ignored from now on
        lambda: log_messages(logs, "/aws/batch/job", stream) == ["stubborn"], "the job ignores SIGTERM"
    )

    batch.terminate_job(jobId=job_id, reason="stop now")
    job = wait_for_status(batch, job_id)

    assert job["container"]["exitCode"] == 137
    assert not process_exists(pid)


@pytest.mark.parametrize("api", ["terminate_job", "cancel_job"])
def test_stopping_a_job_before_it_starts_means_it_never_runs(
    local_batch: LocalBatch, batch: Any, tmp_path: Path, api: str
) -> None:
    # A minute in SUBMITTED: the stop surely comes first, however slow the machine is, and it wakes the
    # job at once (a stopped job's waits end as soon as it is stopped).
    local_batch.settings.step_delay = 60
    marker = tmp_path / "ran"
    job_id = submit(local_batch, batch, unique("early"), ["python", "-c", f"open({str(marker)!r}, 'w')"])

    getattr(batch, api)(jobId=job_id, reason="Not needed any more")
    job = wait_for_status(batch, job_id)
    # Once the job's thread has ended, nothing is left that could still start its command.
    thread = local_batch.runtime.jobs.get(job_id)
    assert thread is not None
    wait_until(lambda: not thread.is_alive(), f"job {job_id}'s thread has ended")

    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Not needed any more"
    assert "startedAt" not in job and job["attempts"] == []
    assert not marker.exists()


def test_attempt_duration_timeout_is_enforced(local_batch: LocalBatch, batch: Any) -> None:
    # time_scale=0.02 makes the 60 s minimum Batch timeout fire after 1.2 s
    started = time.monotonic()
    job_id = submit(
        local_batch, batch, unique("timeout"), SLEEP_FOREVER, timeout={"attemptDurationSeconds": 60}
    )

    job = wait_for_status(batch, job_id)

    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Job attempt duration exceeded timeout"
    assert job["timeout"] == {"attemptDurationSeconds": 60}
    assert job["container"]["exitCode"] == 143
    # No upper bound: how late a loaded machine stops the job says nothing about the timeout.
    assert time.monotonic() - started > 1.0


# --- faults --------------------------------------------------------------------------------------


def test_fail_before_start_hits_only_the_first_matching_jobs(local_batch: LocalBatch, batch: Any) -> None:
    local_batch.faults.fail_before_start(pattern="flaky-*", count=1)
    failed = submit(local_batch, batch, unique("flaky"), ["python", "-c", "print(1)"])
    bystander = submit(local_batch, batch, unique("steady"), ["python", "-c", "print(1)"])
    failed_job = wait_for_status(batch, failed)
    retried = submit(local_batch, batch, unique("flaky"), ["python", "-c", "print(1)"])

    assert failed_job["status"] == "FAILED"
    assert failed_job["statusReason"] == "Task failed to start"
    assert failed_job["container"]["reason"].startswith("CannotPullContainerError: ")
    assert "i/o timeout" in failed_job["container"]["reason"]
    assert "exitCode" not in failed_job["container"]
    assert "startedAt" not in failed_job and "stoppedAt" in failed_job
    assert failed_job["attempts"][0]["container"]["reason"] == failed_job["container"]["reason"]
    assert wait_for_status(batch, bystander)["status"] == "SUCCEEDED"
    assert wait_for_status(batch, retried)["status"] == "SUCCEEDED"


def test_permanent_pull_failure_says_not_found(local_batch: LocalBatch, batch: Any) -> None:
    local_batch.faults.fail_before_start(count=None, permanent=True)
    jobs = [submit(local_batch, batch, unique("missing"), ["python", "-c", "print(1)"]) for _ in range(2)]

    reasons = [wait_for_status(batch, job_id)["container"]["reason"] for job_id in jobs]

    assert all(r.startswith("CannotPullContainerError: ") and r.endswith("not found") for r in reasons)


@pytest.mark.parametrize("reason", [CAPACITY_REASON, MISCONFIGURATION_REASON])
def test_stuck_in_runnable_until_terminated(local_batch: LocalBatch, batch: Any, reason: str) -> None:
    local_batch.faults.stuck_in_runnable(pattern="stuck-*", reason=reason)
    job_id = submit(local_batch, batch, unique("stuck"), ["python", "-c", "print(1)"])
    stuck = wait_until(
        lambda: (job := describe(batch, job_id)).get("statusReason") == reason and job,
        f"job {job_id} is held with its reason",
    )

    batch.terminate_job(jobId=job_id, reason="Gave up waiting")
    job = wait_for_status(batch, job_id)

    assert stuck["status"] == "RUNNABLE" and stuck["statusReason"] == reason
    assert job["status"] == "FAILED" and job["statusReason"] == "Gave up waiting"
    assert "startedAt" not in job


def test_a_stuck_job_starts_once_released(local_batch: LocalBatch, batch: Any) -> None:
    local_batch.faults.stuck_in_runnable(pattern="held-*")
    job_id = submit(local_batch, batch, unique("held"), ["python", "-c", "print(1)"])
    held = wait_until(
        lambda: (job := describe(batch, job_id)).get("statusReason") == CAPACITY_REASON and job,
        f"job {job_id} is held for capacity",
    )
    assert held["status"] == "RUNNABLE"

    assert local_batch.release_stuck_jobs() == [job_id]
    job = wait_for_status(batch, job_id)

    assert job["status"] == "SUCCEEDED" and "startedAt" in job
    assert local_batch.release_stuck_jobs() == []


def test_host_terminated_mid_run(
    local_batch: LocalBatch, batch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # The pid comes from the local Batch's own "runs as pid" log line, written as the process starts and
    # before the fault's clock does: the job is killed 0.3 s after it starts, which on a loaded machine
    # may be before a test reads it as RUNNING, or before its interpreter could print its own pid.
    caplog.set_level(logging.INFO, logger="batch_devtools.local_batch.job")
    local_batch.faults.host_terminated(pattern="doomed-*", after_seconds=0.3)
    job_id = submit(local_batch, batch, unique("doomed"), SLEEP_FOREVER)

    job = wait_for_status(batch, job_id)
    [pid] = [
        record.args[2]
        for record in caplog.records
        if "runs as pid" in record.msg and isinstance(record.args, tuple) and record.args[0] == job_id
    ]
    assert isinstance(pid, int)

    assert job["status"] == "FAILED"
    assert job["statusReason"] == HOST_TERMINATED_REASON
    assert "exitCode" not in job["container"]
    assert job["attempts"][0]["statusReason"] == HOST_TERMINATED_REASON
    assert "startedAt" in job
    assert not process_exists(pid)


def test_throttled_calls_get_http_429_too_many_requests(local_batch: LocalBatch) -> None:
    batch = local_batch.client("batch", config=NO_RETRIES)
    local_batch.clear_submitted_requests()
    local_batch.faults.throttle(count=2, operation="SubmitJob")

    errors = []
    for _ in range(2):
        with pytest.raises(ClientError) as caught:
            submit(local_batch, batch, unique("throttled"), ["python", "-c", "print(1)"])
        errors.append(caught.value.response)
    batch.describe_job_queues()  # other operations are not throttled
    job_id = submit(local_batch, batch, unique("throttled"), ["python", "-c", "print(1)"])

    assert [e["Error"]["Code"] for e in errors] == ["TooManyRequestsException"] * 2
    assert [e["ResponseMetadata"]["HTTPStatusCode"] for e in errors] == [429, 429]
    assert job_id
    assert len(local_batch.submitted_requests()) == 1


def test_throttling_any_operation_and_added_latency(local_batch: LocalBatch) -> None:
    batch = local_batch.client("batch", config=NO_RETRIES)
    local_batch.faults.throttle(count=1)
    with pytest.raises(ClientError) as caught:
        batch.describe_job_queues()
    assert caught.value.response["Error"]["Code"] == "TooManyRequestsException"

    # Seconds of latency, so a call without it is told apart by a margin no load on the machine erases.
    local_batch.faults.latency(3.0, operation="DescribeJobQueues")
    started = time.monotonic()
    batch.describe_job_queues()
    slow = time.monotonic() - started
    started = time.monotonic()
    batch.describe_compute_environments()
    fast = time.monotonic() - started

    assert slow >= 3.0 and fast < slow - 2.0


def test_s3_object_calls_are_counted_and_slowed_like_batch_calls(local_batch: LocalBatch) -> None:
    s3 = local_batch.client("s3")
    bucket = local_batch.environment.workload_bucket
    local_batch.clear_api_calls()
    local_batch.faults.latency(0.3, operation="PutObject")
    started = time.monotonic()
    s3.put_object(Bucket=bucket, Key="counted/object.json", Body=b"{}")
    slow = time.monotonic() - started
    s3.get_object(Bucket=bucket, Key="counted/object.json")
    s3.delete_object(Bucket=bucket, Key="counted/object.json")

    calls = local_batch.api_calls()
    assert slow >= 0.3
    assert (calls["putobject"], calls["getobject"], calls["deleteobject"]) == (1, 1, 1)


# --- queries and recorded requests ---------------------------------------------------------------


def test_list_jobs_by_name_filter_and_status(local_batch: LocalBatch, batch: Any) -> None:
    prefix = unique("listing")
    done = submit(local_batch, batch, f"{prefix}-done", ["python", "-c", "print(1)"])
    wait_for_status(batch, done)
    running = submit(local_batch, batch, f"{prefix}-running", SLEEP_FOREVER)
    wait_for_status(batch, running, ("RUNNING",))

    def ids(**kwargs: Any) -> set[str]:
        return {
            s["jobId"] for s in batch.list_jobs(jobQueue=local_batch.job_queue, **kwargs)["jobSummaryList"]
        }

    try:
        assert ids(filters=[{"name": "JOB_NAME", "values": [f"{prefix}-done"]}]) == {done}
        assert ids(filters=[{"name": "JOB_NAME", "values": [f"{prefix}*"]}]) == {done, running}
        assert done in ids(jobStatus="SUCCEEDED") and running not in ids(jobStatus="SUCCEEDED")
        assert running in ids() and done not in ids()  # like AWS: no status means RUNNING
        second_queue = batch.list_jobs(
            jobQueue=local_batch.second_job_queue, filters=[{"name": "JOB_NAME", "values": [f"{prefix}*"]}]
        )
        assert second_queue["jobSummaryList"] == []
    finally:
        batch.terminate_job(jobId=running, reason="cleanup")


def test_submit_requests_are_recorded_as_sent(local_batch: LocalBatch, batch: Any) -> None:
    local_batch.clear_submitted_requests()
    name = unique("recorded")
    overrides = {"command": ["python", "-c", "print(1)"], "environment": [{"name": "A", "value": "1"}]}
    batch.submit_job(
        jobName=name,
        jobQueue=local_batch.second_job_queue,
        jobDefinition=local_batch.job_definition,
        containerOverrides=overrides,
        tags={"dag_id": "d"},
        timeout={"attemptDurationSeconds": 600},
    )

    (request,) = local_batch.submitted_requests()

    assert request == {
        "jobName": name,
        "jobQueue": "airflow-local-queue-2",
        "jobDefinition": "airflow-local-job",
        "containerOverrides": overrides,
        "tags": {"dag_id": "d"},
        "timeout": {"attemptDurationSeconds": 600},
    }


def test_describe_jobs_accepts_ids_and_arns_up_to_one_hundred(local_batch: LocalBatch, batch: Any) -> None:
    job_id = submit(local_batch, batch, unique("ids"), ["python", "-c", "print(1)"])
    arn = describe(batch, job_id)["jobArn"]

    assert [j["jobId"] for j in batch.describe_jobs(jobs=[arn, "no-such-job"])["jobs"]] == [job_id]
    with pytest.raises(ClientError, match="at most 100"):
        batch.describe_jobs(jobs=[str(uuid.uuid4()) for _ in range(101)])


# --- control over HTTP (for a local Batch running in another process) ----------------------------


def test_http_control_endpoints(local_batch: LocalBatch, batch: Any) -> None:
    control = LocalBatchControl(local_batch.endpoint_url)
    control.clear_submitted_requests()

    faults = control.add_fault("fail_before_start", pattern="remote-*", count=1, permanent=True)
    assert faults["fail_before_start"][0]["pattern"] == "remote-*"
    job_id = submit(local_batch, batch, unique("remote"), ["python", "-c", "print(1)"])
    job = wait_for_status(batch, job_id)

    assert job["container"]["reason"].endswith("not found")
    assert control.faults()["fail_before_start"] == []
    assert [r["jobName"] for r in control.submitted_requests()] == [job["jobName"]]
    assert {
        "jobId": job_id,
        "jobName": job["jobName"],
        "status": "FAILED",
        "pid": None,
        "jobDefinition": job["jobDefinition"],
        "image": "local/airflow-task:latest",
        "vanished": False,
    } in control.jobs()
    assert control.environment()["job_queue"] == local_batch.job_queue

    control.add_fault("throttle", count=3, operation="SubmitJob")
    control.add_fault("latency", seconds=0.1)
    assert local_batch.faults.to_dict()["throttle"][0]["remaining"] == 3
    assert control.clear_faults()["throttle"] == []
    with pytest.raises(ValueError, match="'fault' must be one of"):
        control.add_fault("explode")
    with pytest.raises(ValueError, match="bad arguments for fault 'throttle'"):
        control.add_fault("throttle", bogus=1)


# --- job definitions of their own ------------------------------------------------------------------


def test_a_job_runs_with_its_own_definitions_environment_and_reports_its_image(
    local_batch: LocalBatch, batch: Any, logs: Any
) -> None:
    """Derived definitions are registered with tags, found by name and status, and run as such."""
    base = batch.describe_job_definitions(jobDefinitionName=local_batch.job_definition, status="ACTIVE")
    properties = dict(base["jobDefinitions"][0]["containerProperties"])
    name = unique("own-definition")
    properties.update(
        image="repo/other:2",
        environment=[{"name": "FROM_DEFINITION", "value": "yes"}],
        volumes=[{"name": "scratch"}],
        mountPoints=[{"sourceVolume": "scratch", "containerPath": "/scratch"}],
    )
    arn = batch.register_job_definition(
        jobDefinitionName=name,
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties=properties,
        tags={"airflow-batch-executor.managed": "true"},
    )["jobDefinitionArn"]
    [found] = batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
    assert (found["jobDefinitionArn"], found["tags"]) == (arn, {"airflow-batch-executor.managed": "true"})
    code = (
        "import os; print(os.environ['LOCAL_BATCH_IMAGE'], os.environ['FROM_DEFINITION'], "
        "os.environ['LOCAL_BATCH_MOUNT_POINTS'], os.environ['LOCAL_BATCH_JOB_DEFINITION'] == "
        f"{arn!r})"
    )
    job_id = batch.submit_job(
        jobName=unique("own"),
        jobQueue=local_batch.job_queue,
        jobDefinition=arn,
        containerOverrides={"command": ["python", "-c", code]},
    )["jobId"]

    job = wait_for_status(batch, job_id)

    assert job["status"] == "SUCCEEDED" and job["jobDefinition"] == arn
    assert job["container"]["image"] == "repo/other:2"
    stream = job["container"]["logStreamName"]
    assert log_messages(logs, "/aws/batch/job", stream) == ["repo/other:2 yes /scratch True"]
    [listed] = [j for j in LocalBatchControl(local_batch.endpoint_url).jobs() if j["jobId"] == job_id]
    assert (listed["jobDefinition"], listed["image"]) == (arn, "repo/other:2")
    batch.deregister_job_definition(jobDefinition=arn)
    assert batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"] == []


def test_fail_after_start_turns_a_successful_exit_into_a_failure(
    local_batch: LocalBatch, batch: Any, logs: Any
) -> None:
    local_batch.faults.fail_after_start(pattern="ran-then-failed-*", exit_code=9)
    failed = submit(local_batch, batch, unique("ran-then-failed"), ["python", "-c", "print('ran')"])

    job = wait_for_status(batch, failed)

    assert (job["status"], job["container"]["exitCode"]) == ("FAILED", 9)
    assert log_messages(logs, "/aws/batch/job", job["container"]["logStreamName"]) == ["ran"]
    # Submitted only once the first is final: jobs claim the rule as their containers start, and
    # two jobs started together may start in either order.
    exited = submit(local_batch, batch, unique("ran-then-failed"), ["python", "-c", "print('ran')"])
    assert wait_for_status(batch, exited)["status"] == "SUCCEEDED"


def test_a_control_call_that_does_not_answer_fails_with_where_every_thread_stood(
    local_batch: LocalBatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_answer(request: Any, timeout: float) -> None:
        raise TimeoutError("timed out")

    monkeypatch.setattr(server.urllib.request, "urlopen", no_answer)
    with pytest.raises(RuntimeError) as caught:
        local_batch._post("/moto-api/reset")

    message = str(caught.value)
    assert "did not answer POST /moto-api/reset within 30 s (timed out)" in message
    assert "--- MainThread" in message and "test_a_control_call_that_does_not_answer" in message
