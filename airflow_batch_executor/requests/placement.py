"""Checks that depend on where a job will run: its queue and its job definition.

A Fargate job asking for 1 vCPU with 1 GiB, or a GPU, is accepted by SubmitJob and fails only at
launch, minutes later. Knowing the platform (from the job definition) lets such a request fail at
once, with the nearest valid sizes. Knowing whether the queue uses a fair-share scheduling policy
decides whether ``shareIdentifier`` and ``schedulingPriorityOverride`` may be sent at all: Batch
requires the first on fair-share queues and rejects it elsewhere.

Lookups are cached per queue and definition, and run on the submit threads, never the scheduler's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.errors import TaskConfigError
from airflow_batch_executor.job_contract import MAX_SCHEDULING_PRIORITY
from airflow_batch_executor.requests.sizing import check_resources, resource_requirements

CACHE_SECONDS = 600.0


@dataclass(frozen=True)
class Placement:
    """What a job's queue and definition imply for its request."""

    fair_share: bool
    platform: str
    definition_requirements: Mapping[str, str]
    ephemeral_storage_gib: int | None


class PlacementCatalog:
    """Cached DescribeJobQueues / DescribeJobDefinitions answers, shared by the submit threads.

    A job definition named without a revision is read again once its entry is ``ttl`` seconds old, so
    a new base revision reaches derived definitions within that time.
    """

    def __init__(self, gateway: BatchGateway, ttl: float = CACHE_SECONDS) -> None:
        self._gateway = gateway
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}

    def _cached(self, key: tuple[str, str], look_up: Callable[[], Any]) -> Any:
        with self._lock:
            cached = self._cache.get(key)
        if cached and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        value = look_up()
        with self._lock:
            self._cache[key] = (time.monotonic(), value)
        return value

    def placement(self, job_queue: str, job_definition: str) -> Placement:
        """The placement of a job; TaskConfigError when the queue or definition does not exist."""
        fair_share = self.fair_share(job_queue)
        return definition_placement(self.definition(job_definition), fair_share=fair_share)

    def placement_with(self, job_queue: str, definition: Mapping[str, Any]) -> Placement:
        """The placement of a job on ``job_queue`` with this definition (e.g. one not registered yet)."""
        return definition_placement(definition, fair_share=self.fair_share(job_queue))

    def fair_share(self, job_queue: str) -> bool:
        """Whether the queue has a fair-share scheduling policy; TaskConfigError when it does not exist."""
        return self._cached(("queue", job_queue), lambda: self._fair_share(job_queue))

    def definition(self, job_definition: str) -> dict[str, Any]:
        """The DescribeJobDefinitions record a SubmitJob with this name, name:revision or ARN would use."""
        return self._cached(("definition", job_definition), lambda: self._definition(job_definition))

    def _fair_share(self, job_queue: str) -> bool:
        queue = self._gateway.describe_job_queue(job_queue)
        if queue is None:
            raise TaskConfigError(
                f"the Batch job queue {job_queue!r} does not exist",
                "create it, or correct the task's queue / executor_config jobQueue / "
                "[aws_batch_executor] job_queue",
            )
        return bool(queue.get("schedulingPolicyArn"))

    def _definition(self, job_definition: str) -> dict[str, Any]:
        definition = self._gateway.describe_job_definition(job_definition)
        if definition is None:
            raise TaskConfigError(
                f"the Batch job definition {job_definition!r} does not exist or has no ACTIVE revision",
                "register it, or correct executor_config jobDefinition / [aws_batch_executor] job_definition",
            )
        return definition


def definition_placement(definition: Mapping[str, Any], *, fair_share: bool) -> Placement:
    """The platform and resources a job definition gives its jobs before any override."""
    properties = definition.get("containerProperties") or {}
    capabilities = definition.get("platformCapabilities") or ["EC2"]
    return Placement(
        fair_share=fair_share,
        platform="FARGATE" if "FARGATE" in capabilities else "EC2",
        definition_requirements=resource_requirements(properties),
        ephemeral_storage_gib=(properties.get("ephemeralStorage") or {}).get("sizeInGiB"),
    )


def effective_requirements(placement: Placement, container_overrides: Mapping[str, Any]) -> dict[str, str]:
    """The job definition's VCPU/MEMORY/GPU with the request's overrides applied, as Batch does."""
    return {**placement.definition_requirements, **resource_requirements(container_overrides)}


def resource_problems(placement: Placement, container_overrides: Mapping[str, Any]) -> list[str]:
    """Everything about the job's size that its platform would reject at launch."""
    requirements = effective_requirements(placement, container_overrides)
    return check_resources(placement.platform, requirements, placement.ephemeral_storage_gib)


def place(
    request: Mapping[str, Any],
    placement: Placement,
    *,
    priority_weight: int | None,
    share_identifier: str | None,
) -> dict[str, Any]:
    """The request adjusted to its placement, or TaskConfigError naming what cannot run there."""
    placed = dict(request)
    problems = resource_problems(placement, placed.get("containerOverrides") or {})
    if problems:
        raise TaskConfigError(
            f"the job cannot run on {placement.platform}: " + "; ".join(problems),
            "change the task's resourceRequirements (executor_config) or route it to a queue and job "
            "definition for that platform",
        )
    if placement.fair_share:
        share = placed.get("shareIdentifier") or share_identifier
        if not share:
            raise TaskConfigError(
                f"the job queue {placed['jobQueue']!r} uses a fair-share scheduling policy, which requires a "
                "share identifier",
                "set [aws_batch_executor] share_identifier, or shareIdentifier in the task's executor_config",
            )
        placed["shareIdentifier"] = share
        if "schedulingPriorityOverride" not in placed and priority_weight is not None:
            placed["schedulingPriorityOverride"] = max(0, min(MAX_SCHEDULING_PRIORITY, priority_weight))
    else:
        placed.pop("shareIdentifier", None)
        placed.pop("schedulingPriorityOverride", None)
    return placed
