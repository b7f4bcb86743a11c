"""The start-up health check: everything a first SubmitJob needs, checked before any task is queued.

Each check says what it looked at and, when it fails, how to fix it; the executor refuses to start
on any failure (a scheduler that starts but cannot run a single task is worse than one that stops).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from airflow_batch_executor.aws.errors import ApiErrorKind, classify_api_error, describe_api_error
from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.errors import HealthCheckError, option_place
from airflow_batch_executor.options import S3Location
from airflow_batch_executor.requests.placement import (
    definition_placement,
    effective_requirements,
    resource_problems,
)
from airflow_batch_executor.requests.queue_ladder import OPTION as QUEUE_FALLBACKS


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def __str__(self) -> str:
        mark = "ok" if self.ok else "FAILED"
        text = f"[{mark}] {self.name}: {self.detail}"
        return f"{text}. Fix: {self.fix}" if self.fix else text


def _queue_check(
    gateway: BatchGateway, job_queue: str, team: str | None, option: str = "job_queue"
) -> list[Check]:
    """``option`` names the setting that names the queue, for the fix."""
    name = "job queue" if option == "job_queue" else f"fallback job queue ({option})"
    try:
        queue = gateway.describe_job_queue(job_queue)
    except Exception as error:  # noqa: BLE001 - every failure becomes a reported check
        if classify_api_error(error) is ApiErrorKind.CREDENTIALS:
            fix = (
                f"check the AWS connection named by {option_place('conn_id', team)}, "
                "or the scheduler's IAM role"
            )
            return [Check("AWS credentials", False, describe_api_error(error), fix)]
        fix = "check network access to AWS Batch, region_name and the IAM policy (batch:DescribeJobQueues)"
        return [Check("AWS Batch API", False, describe_api_error(error), fix)]
    checks = [Check("AWS credentials", True, f"connection {gateway.conn_id!r} can call AWS Batch")]
    if queue is None:
        where = (
            f"set {option_place(option, team)} to"
            if option == "job_queue"
            else f"in {option_place(option, team)} name"
        )
        fix = f"create the queue, or {where} an existing queue name or ARN"
        return [*checks, Check(name, False, f"job queue {job_queue!r} does not exist", fix)]
    state, status = queue.get("state"), queue.get("status")
    if state != "ENABLED" or status != "VALID":
        reason = queue.get("statusReason") or "no reason given"
        detail = f"job queue {job_queue!r} is {state}/{status} ({reason})"
        fix = "enable the queue (aws batch update-job-queue --state ENABLED) and fix its compute environments"
        return [*checks, Check(name, False, detail, fix)]
    return [*checks, Check(name, True, f"job queue {job_queue!r} is ENABLED and VALID")]


def _definition_checks(
    gateway: BatchGateway, job_definition: str, base: Mapping[str, Any], team: str | None
) -> list[Check]:
    try:
        definition = gateway.describe_job_definition(job_definition)
    except Exception as error:  # noqa: BLE001 - every failure becomes a reported check
        return [
            Check("job definition", False, describe_api_error(error), "check batch:DescribeJobDefinitions")
        ]
    if definition is None or definition.get("status") != "ACTIVE":
        detail = f"job definition {job_definition!r} does not exist or is not ACTIVE"
        fix = f"register it, or set {option_place('job_definition', team)} to an ACTIVE definition"
        return [Check("job definition", False, detail, fix)]
    name = f"{definition['jobDefinitionName']}:{definition.get('revision')}"
    checks = [Check("job definition", True, f"job definition {name} is ACTIVE")]
    placement = definition_placement(definition, fair_share=False)
    if placement.platform != "FARGATE":
        return checks
    overrides = base.get("containerOverrides") or {}
    problems = resource_problems(placement, overrides)
    if problems:
        fix = "change the job definition's resourceRequirements or those in submit_job_kwargs"
        return [*checks, Check("Fargate size", False, "; ".join(problems), fix)]
    requirements = effective_requirements(placement, overrides)
    size = f"{requirements.get('VCPU')} vCPU / {requirements.get('MEMORY')} MiB"
    return [*checks, Check("Fargate size", True, f"{size} is a valid Fargate size")]


def _workload_location_checks(
    gateway: BatchGateway, location: S3Location, kms_key_id: str | None, team: str | None
) -> list[Check]:
    """The bucket exists in the executor's region, and the scheduler can write and delete there."""
    name = "workload transport"
    option = option_place("workload_transport", team)
    try:
        region = gateway.bucket_region(location.bucket)
    except Exception as error:  # noqa: BLE001 - every failure becomes a reported check
        if isinstance(error, ClientError) and str(error.response.get("Error", {}).get("Code")) in (
            "404",
            "NoSuchBucket",
        ):
            detail = f"bucket {location.bucket!r} of {option} = {location} does not exist"
            fix = (
                "create it (deploy/cloudformation.yaml does, with CreateWorkloadBucket=true) or name an "
                "existing bucket in the executor's region"
            )
            return [Check(name, False, detail, fix)]
        detail = f"cannot look up bucket {location.bucket!r}: {describe_api_error(error)}"
        return [Check(name, False, detail, "check the scheduler's network access to S3 and its credentials")]
    if region and region != gateway.region:
        detail = f"bucket {location.bucket!r} is in {region}, but the executor runs jobs in {gateway.region}"
        fix = (
            f"use a bucket in {gateway.region} for {option}: jobs fetch their workload through their own "
            "region's S3 endpoint (and VPC endpoints), which cannot reach a bucket in another region"
        )
        return [Check(name, False, detail, fix)]
    probe = location.key(f"_health-check-{uuid.uuid4().hex}.json")
    try:
        gateway.put_object(location.bucket, probe, b"{}", kms_key_id)
        gateway.delete_object(location.bucket, probe)
    except Exception as error:  # noqa: BLE001 - every failure becomes a reported check
        prefix = f"arn:aws:s3:::{location.bucket}/{location.key('*')}"
        fix = f"grant the scheduler s3:PutObject and s3:DeleteObject on {prefix}"
        if kms_key_id:
            fix += f", and kms:GenerateDataKey on {kms_key_id}"
        detail = f"cannot write and delete under {location}: {describe_api_error(error)}"
        return [Check(name, False, detail, fix)]
    return [Check(name, True, f"the scheduler can write and delete workload objects under {location}")]


def run_health_checks(
    gateway: BatchGateway,
    job_queue: str,
    job_definition: str,
    base_request: Mapping[str, Any],
    workload_location: S3Location | None = None,
    kms_key_id: str | None = None,
    *,
    team: str | None = None,
    fallback_queues: Sequence[str] = (),
) -> list[Check]:
    """Every check, in order; later checks are skipped when an earlier one makes them meaningless.

    ``team``: the checks are of that team's executor, so each fix names the team's own setting.
    ``fallback_queues``: the queues of the ``queue_fallbacks`` ladder, each checked like ``job_queue``.
    """
    checks = _queue_check(gateway, job_queue, team)
    if checks[0].ok:
        for fallback in fallback_queues:
            fallback_checks = _queue_check(gateway, fallback, team, QUEUE_FALLBACKS)
            checks += [check for check in fallback_checks if not check.ok or check.name != checks[0].name]
        checks += _definition_checks(gateway, job_definition, base_request, team)
        if workload_location is not None:
            checks += _workload_location_checks(gateway, workload_location, kms_key_id, team)
    return checks


def require_healthy(checks: list[Check], *, team: str | None = None) -> None:
    """Stop start-up with every failed check and its fix, naming the team whose settings are wrong."""
    if failed := [check for check in checks if not check.ok]:
        whose = f" of team {team!r}" if team else ""
        raise HealthCheckError(
            f"AwsBatchExecutor{whose} cannot start; its health check failed:\n"
            + "\n".join(f"  {check}" for check in failed)
            + f"\nSet {option_place('check_health_on_startup', team)} to False only to bypass this check."
        )
