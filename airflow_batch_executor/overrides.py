"""``BatchJobOverrides``: per-task Batch settings for DAG authors, checked when the DAG is parsed.

It builds the same SubmitJob overrides a raw ``executor_config`` dict would hold, and is itself a
dict, so Airflow serialises it like any ``executor_config`` and both styles keep working. Checks that
need to know the platform (Fargate sizes, GPUs) happen before submit, against the task's queue.

Ephemeral storage is not offered: SubmitJob cannot override it for container jobs; it is set on the
job definition (route such tasks with ``job_definition=``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta

MIN_TIMEOUT_SECONDS = 60


def _positive(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"BatchJobOverrides {name}={value!r}: use a positive number")


class BatchJobOverrides(dict):
    """``executor_config=BatchJobOverrides(vcpu=2, memory_mib=4096, timeout=timedelta(hours=1))``."""

    def __init__(
        self,
        *,
        vcpu: float | None = None,
        memory_mib: int | None = None,
        gpu: int | None = None,
        timeout: timedelta | None = None,
        environment: Mapping[str, str] | None = None,
        job_queue: str | None = None,
        job_definition: str | None = None,
        share_identifier: str | None = None,
        scheduling_priority: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        requirements = []
        if vcpu is not None:
            _positive("vcpu", vcpu)
            requirements.append({"type": "VCPU", "value": f"{vcpu:g}"})
        if memory_mib is not None:
            _positive("memory_mib", memory_mib)
            requirements.append({"type": "MEMORY", "value": str(int(memory_mib))})
        if gpu is not None:
            if not isinstance(gpu, int) or isinstance(gpu, bool) or gpu < 0:
                raise ValueError(f"BatchJobOverrides gpu={gpu!r}: use a whole number ≥ 0")
            if gpu:
                requirements.append({"type": "GPU", "value": str(gpu)})
        container: dict = {}
        if requirements:
            container["resourceRequirements"] = requirements
        if environment:
            container["environment"] = [{"name": str(k), "value": str(v)} for k, v in environment.items()]
        if container:
            self["containerOverrides"] = container
        if timeout is not None:
            seconds = math.ceil(timeout.total_seconds())
            if seconds < MIN_TIMEOUT_SECONDS:
                raise ValueError(
                    f"BatchJobOverrides timeout={timeout}: AWS Batch needs at least {MIN_TIMEOUT_SECONDS} seconds"
                )
            self["timeout"] = {"attemptDurationSeconds": seconds}
        if scheduling_priority is not None:
            self["schedulingPriorityOverride"] = int(scheduling_priority)
        for key, value in (("jobQueue", job_queue), ("jobDefinition", job_definition), ("shareIdentifier", share_identifier)):
            if value:
                self[key] = value
        if tags:
            self["tags"] = {str(k): str(v) for k, v in tags.items()}
