"""The start-up health check against the local Batch: each broken setup stops start-up with its fix."""

from __future__ import annotations

import json
import uuid

import pytest

from airflow_batch_executor.errors import HealthCheckError, OptionError
from airflow_batch_executor.health import run_health_checks


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def start_fails(make_executor) -> str:
    executor = make_executor(start=False)
    with pytest.raises(HealthCheckError) as err:
        executor.start()
    return str(err.value)


def test_healthy_setup_starts(make_executor, batch_env):
    executor = make_executor()
    checks = run_health_checks(executor.gateway, batch_env.job_queue, batch_env.job_definition, {})
    assert [(c.name, c.ok) for c in checks] == [
        ("AWS credentials", True),
        ("job queue", True),
        ("job definition", True),
        ("Fargate size", True),
    ]


def test_missing_queue(make_executor, batch_env, monkeypatch):
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__JOB_QUEUE", "no-such-queue")
    message = start_fails(make_executor)
    assert "job queue 'no-such-queue' does not exist" in message
    assert "Fix: create the queue" in message


def test_disabled_queue(make_executor, batch_env, monkeypatch):
    client = batch_env.client("batch")
    name = unique("disabled")
    ce = client.describe_compute_environments()["computeEnvironments"][0]["computeEnvironmentArn"]
    client.create_job_queue(
        jobQueueName=name,
        state="DISABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__JOB_QUEUE", name)
    message = start_fails(make_executor)
    assert f"job queue '{name}' is DISABLED" in message
    assert "update-job-queue --state ENABLED" in message


def test_missing_job_definition(make_executor, batch_env, monkeypatch):
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__JOB_DEFINITION", "no-such-definition")
    message = start_fails(make_executor)
    assert "job definition 'no-such-definition' does not exist or is not ACTIVE" in message


def register_fargate(client, vcpu: str, memory: str) -> str:
    name = unique("fargate")
    client.register_job_definition(
        jobDefinitionName=name,
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties={
            "image": "python:3.11",
            "resourceRequirements": [{"type": "VCPU", "value": vcpu}, {"type": "MEMORY", "value": memory}],
            "executionRoleArn": "arn:aws:iam::123456789012:role/x",
        },
    )
    return name


def test_invalid_fargate_pair_in_the_job_definition(make_executor, batch_env, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW__AWS_BATCH_EXECUTOR__JOB_DEFINITION",
        register_fargate(batch_env.client("batch"), "1", "1024"),
    )
    message = start_fails(make_executor)
    assert "[FAILED] Fargate size" in message
    assert "vCPU 1 with 1024 MiB is not a valid Fargate size" in message


def test_invalid_fargate_pair_from_submit_job_kwargs(make_executor, batch_env, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW__AWS_BATCH_EXECUTOR__SUBMIT_JOB_KWARGS",
        json.dumps(
            {
                "containerOverrides": {
                    "resourceRequirements": [
                        {"type": "VCPU", "value": "4"},
                        {"type": "MEMORY", "value": "4096"},
                    ]
                }
            }
        ),
    )
    message = start_fails(make_executor)
    assert "vCPU 4 with 4096 MiB is not a valid Fargate size" in message


def test_bad_credentials_are_named(make_executor, batch_env, monkeypatch):
    def expired(**kwargs):
        from botocore.exceptions import ClientError

        raise ClientError(
            {
                "Error": {
                    "Code": "ExpiredTokenException",
                    "Message": "The security token included in the request is expired",
                }
            },
            "DescribeJobQueues",
        )

    from airflow_batch_executor.aws.gateway import BatchGateway

    monkeypatch.setattr(BatchGateway, "describe_job_queue", lambda self, name: expired())
    message = start_fails(make_executor)
    assert "[FAILED] AWS credentials: ExpiredTokenException" in message
    assert "conn_id" in message


def test_bad_option_stops_start_up_before_any_call(make_executor, batch_env, monkeypatch):
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__SUBMIT_JOB_KWARGS", "{oops")
    executor = make_executor(start=False)
    with pytest.raises(OptionError, match=r"\[aws_batch_executor\] submit_job_kwargs is not valid JSON"):
        executor.start()
