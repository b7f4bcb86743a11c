"""Batch-level retries (retryStrategy) and the retry_after_start fault, over real HTTP with boto3."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError
from waiting import describe, events_of, log_messages, wait_for_status, wait_until

from batch_devtools.local_batch import CAPACITY_REASON, HOST_TERMINATED_REASON, LocalBatch

SAY_ATTEMPT = "import os, sys; print('attempt', os.environ['AWS_BATCH_JOB_ATTEMPT'], flush=True); "
SLEEP_FOREVER = ["python", "-c", "import time; time.sleep(60)"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def submit(lb: LocalBatch, name: str, command: list[str], **kwargs: Any) -> str:
    return lb.client("batch").submit_job(
        jobName=name,
        jobQueue=lb.job_queue,
        jobDefinition=kwargs.pop("jobDefinition", lb.job_definition),
        containerOverrides={"command": command},
        **kwargs,
    )["jobId"]


def test_failed_attempts_are_retried_until_the_attempts_run_out(local_batch: LocalBatch, batch: Any) -> None:
    job_id = submit(
        local_batch,
        unique("retried"),
        ["python", "-c", SAY_ATTEMPT + "sys.exit(3)"],
        retryStrategy={"attempts": 3},
    )

    job = wait_for_status(batch, job_id)

    assert job["status"] == "FAILED" and job["retryStrategy"] == {"attempts": 3}
    attempts = job["attempts"]
    assert [a["container"]["exitCode"] for a in attempts] == [3, 3, 3]
    assert [a["statusReason"] for a in attempts] == ["Essential container in task exited"] * 3
    assert len({a["container"]["taskArn"] for a in attempts}) == 3
    for earlier, later in itertools.pairwise(attempts):
        assert earlier["startedAt"] <= earlier["stoppedAt"] <= later["startedAt"] <= later["stoppedAt"]
    latest = attempts[-1]
    assert (job["startedAt"], job["stoppedAt"]) == (latest["startedAt"], latest["stoppedAt"])
    assert job["container"]["exitCode"] == 3 and job["container"]["taskArn"] == latest["container"]["taskArn"]
    assert job["container"]["logStreamName"] == latest["container"]["logStreamName"]
    streams = [a["container"]["logStreamName"] for a in attempts]
    assert [log_messages(local_batch, stream) for stream in streams] == [
        ["attempt 1"],
        ["attempt 2"],
        ["attempt 3"],
    ]
    assert [e["attempt"] for e in events_of(local_batch, job_id, "attempt_started")] == [1, 2, 3]
    assert [e["attempt"] for e in events_of(local_batch, job_id, "retry")] == [1, 2]
    [final] = events_of(local_batch, job_id, "job_final")
    assert (final["status"], final["attempts"]) == ("FAILED", 3)


def test_the_job_definitions_retry_strategy_applies_when_the_request_has_none(
    local_batch: LocalBatch, batch: Any
) -> None:
    base = batch.describe_job_definitions(jobDefinitionName=local_batch.job_definition, status="ACTIVE")
    arn = batch.register_job_definition(
        jobDefinitionName=unique("retrying-definition"),
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties=base["jobDefinitions"][0]["containerProperties"],
        retryStrategy={"attempts": 2},
    )["jobDefinitionArn"]
    script = SAY_ATTEMPT + "sys.exit(0 if os.environ['AWS_BATCH_JOB_ATTEMPT'] == '2' else 1)"

    job = wait_for_status(
        batch, submit(local_batch, unique("second-time"), ["python", "-c", script], jobDefinition=arn)
    )

    assert job["status"] == "SUCCEEDED" and job["container"]["exitCode"] == 0
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [1, 0]
    assert job["retryStrategy"]["attempts"] == 2


def test_a_job_that_failed_to_start_is_retried(local_batch: LocalBatch, batch: Any) -> None:
    local_batch.faults.fail_before_start(pattern="pull-again-*")
    job_id = submit(
        local_batch, unique("pull-again"), ["python", "-c", SAY_ATTEMPT], retryStrategy={"attempts": 2}
    )

    job = wait_for_status(batch, job_id)

    assert job["status"] == "SUCCEEDED"
    first, second = job["attempts"]
    assert first["statusReason"] == "Task failed to start" and "startedAt" not in first
    assert log_messages(local_batch, second["container"]["logStreamName"]) == ["attempt 2"]


@pytest.mark.parametrize(
    ("rules", "attempts"),
    [
        ([{"onExitCode": "3", "action": "EXIT"}], 1),
        ([{"onExitCode": "4", "action": "EXIT"}], 2),
        ([{"onReason": "*", "action": "RETRY"}, {"onExitCode": "3", "action": "EXIT"}], 1),
        ([{"onStatusReason": "Essential*", "onExitCode": "3", "action": "RETRY"}], 2),
    ],
)
def test_evaluate_on_exit_decides_by_its_first_matching_rule(
    local_batch: LocalBatch, batch: Any, rules: list[dict[str, str]], attempts: int
) -> None:
    job_id = submit(
        local_batch,
        unique("evaluate"),
        ["python", "-c", "raise SystemExit(3)"],
        retryStrategy={"attempts": 2, "evaluateOnExit": rules},
    )

    assert len(wait_for_status(batch, job_id)["attempts"]) == attempts


def test_an_attempt_that_timed_out_is_not_retried(local_batch: LocalBatch, batch: Any) -> None:
    # time_scale=0.02: the 60 s minimum timeout fires after 1.2 s
    job_id = submit(
        local_batch,
        unique("timeout"),
        SLEEP_FOREVER,
        retryStrategy={"attempts": 3},
        timeout={"attemptDurationSeconds": 60},
    )

    job = wait_for_status(batch, job_id)

    assert job["statusReason"] == "Job attempt duration exceeded timeout"
    assert len(job["attempts"]) == 1 and job["container"]["exitCode"] == 143


def test_a_terminated_job_is_not_retried(local_batch: LocalBatch, batch: Any) -> None:
    job_id = submit(local_batch, unique("terminated"), SLEEP_FOREVER, retryStrategy={"attempts": 3})
    wait_for_status(batch, job_id, ("RUNNING",))

    batch.terminate_job(jobId=job_id, reason="Not needed")
    job = wait_for_status(batch, job_id)

    assert (job["status"], job["statusReason"], len(job["attempts"])) == ("FAILED", "Not needed", 1)
    [terminate] = events_of(local_batch, job_id, "terminate")
    assert (terminate["reason"], terminate["status"]) == ("Not needed", "RUNNING")


def test_a_job_terminated_while_it_waits_for_its_retry_never_runs_again(
    local_batch: LocalBatch, batch: Any
) -> None:
    # Both attempts are held in RUNNABLE (a rule for two): the first is let go, the retry waits there
    # until it is terminated, so the terminate surely finds it between its attempts.
    local_batch.faults.stuck_in_runnable(pattern="between-*", count=2)
    job_id = submit(
        local_batch, unique("between"), ["python", "-c", "raise SystemExit(1)"], retryStrategy={"attempts": 2}
    )
    wait_until(lambda: local_batch.release_stuck_jobs([job_id]), "the first attempt is held, then let go")

    waiting = wait_until(
        lambda: (
            (job := describe(batch, job_id)).get("statusReason") == CAPACITY_REASON
            and job["attempts"]
            and job
        ),
        "the job waits for its second attempt",
    )
    batch.terminate_job(jobId=job_id, reason="Revoked")
    job = wait_for_status(batch, job_id)

    assert "startedAt" not in waiting and waiting["attempts"][0]["container"]["exitCode"] == 1
    assert (job["status"], job["statusReason"]) == ("FAILED", "Revoked")
    assert len(job["attempts"]) == 1 and "startedAt" not in job
    assert [e["attempt"] for e in events_of(local_batch, job_id, "attempt_started")] == [1]


def test_retry_after_start_runs_a_job_again_even_when_its_first_attempt_succeeded(
    local_batch: LocalBatch, batch: Any
) -> None:
    local_batch.faults.retry_after_start(pattern="rerun-*")
    job_id = submit(local_batch, unique("rerun"), ["python", "-c", SAY_ATTEMPT])
    bystander = submit(local_batch, unique("once"), ["python", "-c", SAY_ATTEMPT])

    job = wait_for_status(batch, job_id)

    assert job["status"] == "SUCCEEDED" and "retryStrategy" not in job
    first, second = job["attempts"]
    assert first["statusReason"] == HOST_TERMINATED_REASON == first["container"]["reason"]
    assert "exitCode" not in first["container"] and "startedAt" in first
    assert second["container"]["exitCode"] == 0
    assert log_messages(local_batch, first["container"]["logStreamName"]) == ["attempt 1"]
    assert log_messages(local_batch, second["container"]["logStreamName"]) == ["attempt 2"]
    assert len(wait_for_status(batch, bystander)["attempts"]) == 1
    assert local_batch.faults.to_dict()["retry_after_start"] == []


def test_retry_after_start_adds_one_attempt_to_the_retry_strategy(
    local_batch: LocalBatch, batch: Any
) -> None:
    local_batch.faults.retry_after_start(pattern="extra-*")
    job_id = submit(
        local_batch, unique("extra"), ["python", "-c", "raise SystemExit(2)"], retryStrategy={"attempts": 2}
    )

    job = wait_for_status(batch, job_id)

    assert [a["statusReason"] for a in job["attempts"]] == [
        HOST_TERMINATED_REASON,
        "Essential container in task exited",
        "Essential container in task exited",
    ]


def test_hold_mode_refuses_a_job_that_retry_after_start_matches(local_batch: LocalBatch, batch: Any) -> None:
    local_batch.settings.job_mode = "hold"
    local_batch.faults.retry_after_start(pattern="held-retry-*")

    with pytest.raises(ClientError) as refused:
        submit(local_batch, unique("held-retry"), ["python", "-c", "print(1)"])
    held = submit(local_batch, unique("held-plain"), ["python", "-c", "print(1)"])

    assert refused.value.response["Error"]["Code"] == "ClientException"
    assert "hold mode" in refused.value.response["Error"]["Message"]
    assert wait_for_status(batch, held, ("RUNNING",))["status"] == "RUNNING"
    batch.terminate_job(jobId=held, reason="cleanup")
