"""SubmitJob refuses an INACTIVE job definition revision, as AWS does (moto accepts it)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError
from waiting import events_of, wait_for_status

from batch_devtools.local_batch import LocalBatch, LocalBatchControl


def register(batch: Any, lb: LocalBatch, name: str) -> str:
    base = batch.describe_job_definitions(jobDefinitionName=lb.job_definition, status="ACTIVE")
    return batch.register_job_definition(
        jobDefinitionName=name,
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties=base["jobDefinitions"][0]["containerProperties"],
    )["jobDefinitionArn"]


def submit(lb: LocalBatch, batch: Any, definition: str) -> str:
    return batch.submit_job(
        jobName=f"def-{uuid.uuid4().hex[:8]}",
        jobQueue=lb.job_queue,
        jobDefinition=definition,
        containerOverrides={"command": ["python", "-c", "print(1)"]},
    )["jobId"]


def refusal(lb: LocalBatch, batch: Any, definition: str) -> dict[str, Any]:
    with pytest.raises(ClientError) as refused:
        submit(lb, batch, definition)
    return refused.value.response


def test_an_inactive_revision_is_refused_and_a_name_runs_its_latest_active_one(
    local_batch: LocalBatch, batch: Any
) -> None:
    name = f"pruned-{uuid.uuid4().hex[:8]}"
    first = register(batch, local_batch, name)
    second = register(batch, local_batch, name)
    batch.deregister_job_definition(jobDefinition=second)

    by_arn = refusal(local_batch, batch, second)
    by_revision = refusal(local_batch, batch, f"{name}:2")
    job_id = submit(local_batch, batch, name)

    assert by_arn["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert by_arn["Error"] == {
        "Code": "ClientException",
        "Message": f"JobDefinition {second} is not in ACTIVE status",
    }
    assert by_revision["Error"]["Message"] == f"JobDefinition {second} is not in ACTIVE status"
    assert wait_for_status(batch, job_id)["jobDefinition"] == first
    [submitted] = events_of(local_batch, job_id, "submit")
    assert (submitted["jobDefinition"], submitted["jobDefinitionArn"]) == (name, first)


def test_a_name_without_an_active_revision_is_refused(local_batch: LocalBatch, batch: Any) -> None:
    name = f"gone-{uuid.uuid4().hex[:8]}"
    batch.deregister_job_definition(jobDefinition=register(batch, local_batch, name))

    by_name = refusal(local_batch, batch, name)
    never_registered = refusal(local_batch, batch, f"never-{name}")
    unknown_arn = refusal(local_batch, batch, f"arn:aws:batch:us-east-1:123456789012:job-definition/{name}:9")

    assert (
        by_name["Error"]["Message"] == f"JobDefinition name {name} does not exist or is not in ACTIVE status"
    )
    assert never_registered["Error"]["Message"].endswith("does not exist or is not in ACTIVE status")
    assert (
        unknown_arn["Error"]["Code"] == "ClientException"
        and "does not exist" in unknown_arn["Error"]["Message"]
    )


def test_the_control_endpoint_refuses_inactive_revisions_too(local_batch: LocalBatch, batch: Any) -> None:
    arn = register(batch, local_batch, f"bulk-{uuid.uuid4().hex[:8]}")
    batch.deregister_job_definition(jobDefinition=arn)
    control = LocalBatchControl(local_batch.endpoint_url)

    with pytest.raises(ValueError, match="is not in ACTIVE status"):
        control.create_jobs([{"jobName": "bulk", "jobQueue": local_batch.job_queue, "jobDefinition": arn}])
