"""``workload_transport = s3://...`` against the local Batch and moto's S3, over real HTTP.

Jobs run the real bootstrap (``python -m airflow_batch_executor.in_job.bootstrap s3://...``), which
fetches and deletes the object from moto's S3 on the same endpoint. The Task SDK it then starts needs an
api-server, so these jobs get a stand-in (``fake_task_sdk.py``, put in place of
``airflow.sdk.execution_time.execute_workload`` by a ``sitecustomize`` on the jobs' PYTHONPATH) that
prints what it was handed: the task, the file's mode and the token's claims (or, where Airflow does
not let the executor sign tokens, the SHA-256 of the scheduler's token as it came: the bootstrap
shows the token itself as ``***`` in the job's log). The real Task SDK runs the workload in
test_s3_job_log_token.py and tests/e2e/test_s3_transport.py.
"""

from __future__ import annotations

import hashlib
import json
import time
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from airflow_batch_executor.in_job.bootstrap import EXIT_FETCH_FAILED, EXIT_OBJECT_MISSING
from airflow_batch_executor.rules.outcome import classify
from airflow_batch_executor.workloads.transport import token_window

from .botocore_faults import BotocoreFaults
from .helpers import (
    BUCKET,
    MINTS,
    describe,
    executor_job_id,
    final_states,
    finished,
    pump,
    queue,
    short_lived_tokens,
    wait_until,
    workload,
)


def job_log(batch_env, record: dict, timeout: float = 10.0) -> str:
    """The job's CloudWatch Logs stream (flushed shortly after the job ends)."""
    logs = batch_env.client("logs")
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        stream = describe(batch_env, record["jobId"])["container"].get("logStreamName")
        if stream:
            events = logs.get_log_events(logGroupName=batch_env.log_group, logStreamName=stream)["events"]
            text = "\n".join(event["message"] for event in events)
            if text:
                return text
        time.sleep(0.2)
    return text


def fake_report(log: str) -> dict:
    [line] = [line for line in log.splitlines() if line.startswith("FAKE-TASK-SDK ")]
    return json.loads(line.removeprefix("FAKE-TASK-SDK "))


def test_the_job_fetches_deletes_and_runs_its_workload_and_no_token_reaches_batch(
    make_executor, batch_env, s3_mode
):
    executor = make_executor()
    item = workload("ok")
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    assert final_states(events) == {item.ti.key: "success"}
    job_id = next(info for _, state, info in events if state == "running")

    [request] = batch_env.submitted_requests()
    record = describe(batch_env, job_id)
    command = request["containerOverrides"]["command"]
    assert command[:3] == ["python", "-m", "airflow_batch_executor.in_job.bootstrap"]
    assert command[3].startswith(f"s3://{BUCKET}/{s3_mode.prefix}/global/{request['jobName']}.")
    for seen in (request, record):
        dumped = json.dumps(seen, default=str)
        assert "eyJ" not in dumped and "workload-token" not in dumped

    report = fake_report(job_log(batch_env, record))
    assert report["task_id"] == "ok" and report["mode"] == "0o600"
    if MINTS:  # a token signed for this submission, for this task instance
        assert report["sub"] == str(item.ti.id) and report["exp"] > report["now"]
    else:  # the scheduler's token, kept
        assert report["token_sha256"] == hashlib.sha256(b"workload-token").hexdigest()
    assert s3_mode.objects() == []


def test_a_failed_write_is_retried_like_a_failed_submit_job(make_executor, batch_env, s3_mode, monkeypatch):
    faults = BotocoreFaults().install(monkeypatch)
    faults.inject("PutObject", "server_error", count=2)
    executor = make_executor()
    item = workload("ok")
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    assert final_states(events) == {item.ti.key: "success"}
    assert faults.injected.count(("PutObject", "server_error")) == 2
    assert len(batch_env.submitted_requests()) == 1
    assert s3_mode.objects() == []


def test_submit_job_failing_after_the_write_removes_the_object(
    make_executor, batch_env, s3_mode, monkeypatch
):
    faults = BotocoreFaults().install(monkeypatch)
    faults.inject("SubmitJob", "server_error", count=3)
    executor = make_executor()
    item = workload("ok")
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    [(state, reason)] = [(state, info) for key, state, info in events if state != "running"]
    assert state == "failed" and "SubmitJob failed after 3 attempt(s)" in reason
    assert faults.injected.count(("SubmitJob", "server_error")) == 3
    assert batch_env.submitted_requests() == []
    assert s3_mode.objects() == []


def test_a_lost_submit_job_answer_keeps_the_object_for_the_job_that_exists(
    make_executor, batch_env, s3_mode, monkeypatch
):
    faults = BotocoreFaults().install(monkeypatch)
    faults.lose_response("SubmitJob")
    executor = make_executor()
    item = workload("ok")
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    assert final_states(events) == {item.ti.key: "success"}
    assert len(batch_env.submitted_requests()) == 1
    assert s3_mode.objects() == []


def test_an_object_already_consumed_fails_the_task_with_the_reason(make_executor, batch_env, s3_mode):
    batch_env.faults.stuck_in_runnable(pattern="dag-consumed-*")
    executor = make_executor()
    item = workload("consumed")
    queue(executor, item)
    running = pump(executor, lambda events: any(state == "running" for _, state, _ in events))
    [key] = s3_mode.objects()
    s3_mode.s3.delete_object(Bucket=BUCKET, Key=key)
    wait_until(lambda: batch_env.release_stuck_jobs() != [])
    events = pump(executor, finished(item.ti.key))
    [(state, reason)] = [(state, info) for _, state, info in events if state != "running"]
    assert state == "failed"
    assert f"exit code {EXIT_OBJECT_MISSING}" in reason and "already consumed or removed" in reason
    job_id = executor_job_id(running)
    log = job_log(batch_env, describe(batch_env, job_id))
    assert f"workload object s3://{BUCKET}/{key} does not exist" in log


def test_a_worker_pointed_at_a_bucket_it_cannot_read_fails_with_one_line(batch_env, s3_mode):
    uri = f"s3://no-such-workload-bucket/{s3_mode.prefix}/job.json"
    batch = batch_env.client("batch")
    job_id = batch.submit_job(
        jobName=f"wrong-bucket-{s3_mode.prefix}",
        jobQueue=batch_env.job_queue,
        jobDefinition=batch_env.job_definition,
        containerOverrides={"command": ["python", "-m", "airflow_batch_executor.in_job.bootstrap", uri]},
    )["jobId"]
    wait_until(lambda: describe(batch_env, job_id)["status"] in ("SUCCEEDED", "FAILED"), timeout=30)
    record = describe(batch_env, job_id)
    assert record["status"] == "FAILED" and record["container"]["exitCode"] == EXIT_FETCH_FAILED
    [line] = [line for line in job_log(batch_env, record).splitlines() if line.strip()]
    assert line.startswith("airflow-batch-executor worker: ")
    assert uri in line and "bucket 'no-such-workload-bucket' does not exist" in line
    outcome = classify(record)
    assert "workload bootstrap stopped before running the task" in outcome.reason


def test_revoking_a_waiting_task_removes_its_object(make_executor, batch_env, s3_mode):
    batch_env.faults.stuck_in_runnable(pattern="dag-revoked-*")
    executor = make_executor()
    item = workload("revoked")
    queue(executor, item)
    events = pump(executor, lambda events: any(state == "running" for _, state, _ in events))
    assert len(s3_mode.objects()) == 1
    executor.revoke_task(ti=SimpleNamespace(key=item.ti.key, external_executor_id=executor_job_id(events)))
    wait_until(lambda: s3_mode.objects() == [])
    wait_until(lambda: describe(batch_env, executor_job_id(events))["status"] == "FAILED")


def test_a_job_that_never_started_has_its_object_removed(make_executor, batch_env, s3_mode):
    batch_env.faults.fail_before_start(pattern="dag-unpulled-*", permanent=True)
    executor = make_executor()
    item = workload("unpulled")
    queue(executor, item)
    events = pump(executor, finished(item.ti.key))
    assert final_states(events) == {item.ti.key: "failed"}
    wait_until(lambda: s3_mode.objects() == [])


@pytest.mark.skipif(not MINTS, reason="this Airflow cannot sign workload tokens; the scheduler's is kept")
def test_a_job_waiting_past_its_token_lifetime_starts_with_a_fresh_token(
    make_executor, batch_env, s3_mode, monkeypatch, status_source
):
    """With status from events a waiting job sends none, and reconciliation (60 s here) comes after
    the token expired: the refresh runs on its own clock."""
    lifetime = 4
    short_lived_tokens(monkeypatch, lifetime)
    batch_env.faults.stuck_in_runnable(pattern="dag-patient-*")
    executor = make_executor()
    item = workload("patient")
    queue(executor, item)
    events = pump(executor, lambda events: any(state == "running" for _, state, _ in events))
    [key] = s3_mode.objects()

    def token_claims() -> dict:
        body = json.loads(s3_mode.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        issued, expires = token_window(body["token"])
        return {"iat": issued, "exp": expires}

    first = token_claims()
    assert first["exp"] - first["iat"] == lifetime
    # Waits on the refresh, not a duration: on a loaded machine it may come late, and how soon it
    # comes is the half-life rule's (tests/unit/test_handoff.py), not this test's.
    latest = first

    def refreshed_past_expiry(_: list) -> bool:
        nonlocal latest
        latest = token_claims()
        return time.time() > first["exp"] and latest["iat"] > first["iat"]

    events += pump(executor, refreshed_past_expiry, timeout=60)
    assert describe(batch_env, executor_job_id(events))["status"] == "RUNNABLE"

    assert batch_env.release_stuck_jobs()
    released_at = time.time()
    events += pump(executor, finished(item.ti.key))
    assert final_states(events) == {item.ti.key: "success"}
    report = fake_report(job_log(batch_env, describe(batch_env, executor_job_id(events))))
    # The job started with a token signed while it waited, still valid when capacity appeared.
    assert report["iat"] >= latest["iat"] > first["iat"] and report["exp"] > released_at > first["exp"]
    assert s3_mode.objects() == []


def s3_checks(batch_env, uri: str) -> list:
    from airflow_batch_executor.aws.gateway import BatchGateway
    from airflow_batch_executor.health import run_health_checks
    from airflow_batch_executor.options import load_options
    from airflow_batch_executor.requests.factory import base_request

    values = {"job_queue": batch_env.job_queue, "job_definition": batch_env.job_definition}
    values["workload_transport"] = uri

    class Conf:
        def get(self, section, key, fallback=None):
            return values.get(key, fallback)

    options = load_options(Conf())
    gateway = BatchGateway("aws_default", batch_env.region)
    checks = run_health_checks(
        gateway, options.job_queue, options.job_definition, base_request(options), options.workload_transport
    )
    return [check for check in checks if check.name == "workload transport"]


def test_health_check_writes_and_deletes_under_the_prefix(batch_env, s3_mode):
    [check] = s3_checks(batch_env, f"s3://{BUCKET}/{s3_mode.prefix}")
    assert check.ok, check
    assert f"under s3://{BUCKET}/{s3_mode.prefix}" in check.detail
    assert s3_mode.objects() == []


def test_health_check_names_a_missing_bucket_and_the_fix(batch_env, s3_mode):
    [check] = s3_checks(batch_env, "s3://no-such-workload-bucket/airflow")
    assert not check.ok
    assert "bucket 'no-such-workload-bucket'" in check.detail and "does not exist" in check.detail
    assert "CreateWorkloadBucket" in check.fix


def test_health_check_refuses_a_bucket_in_another_region(batch_env, s3_mode):
    far = "airflow-workloads-eu"
    try:
        s3_mode.s3.create_bucket(Bucket=far, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    except ClientError as error:
        if error.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    [check] = s3_checks(batch_env, f"s3://{far}/airflow")
    assert not check.ok
    assert f"bucket {far!r} is in eu-west-1, but the executor runs jobs in {batch_env.region}" in check.detail
    assert f"use a bucket in {batch_env.region}" in check.fix


def test_the_scheduler_does_not_start_with_a_missing_bucket(make_executor, batch_env, monkeypatch):
    from airflow_batch_executor.errors import HealthCheckError

    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__WORKLOAD_TRANSPORT", "s3://no-such-workload-bucket/x")
    executor = make_executor(start=False)
    with pytest.raises(HealthCheckError, match="no-such-workload-bucket"):
        executor.start()
