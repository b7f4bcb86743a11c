"""``BatchJobOverrides``: per-task Batch settings for DAG authors, checked when the DAG is parsed.

It builds the same SubmitJob overrides a raw ``executor_config`` dict would hold, and is itself a
dict, so Airflow serialises it like any ``executor_config`` and both styles keep working. Checks that
need to know the platform (Fargate sizes, GPUs) happen before submit, against the task's queue.

Ephemeral storage is not offered: SubmitJob cannot override it for container jobs; it is set on the
job definition (route such tasks with ``job_definition=``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow_batch_executor.batch_facts import MAX_SCHEDULING_PRIORITY
from airflow_batch_executor.batch_facts import MIN_ATTEMPT_DURATION_SECONDS as MIN_TIMEOUT_SECONDS
from airflow_batch_executor.sizing import FARGATE_MEMORY_BY_VCPU

# Batch takes fractional vCPUs only on Fargate, and only these; whether the queue is Fargate (and
# which vCPU/memory pairs it takes) is checked before submit, when the job's platform is known.
FARGATE_FRACTIONAL_VCPUS = tuple(vcpu for vcpu in FARGATE_MEMORY_BY_VCPU if vcpu < 1)


def _fail(name: str, value: Any, fix: str) -> ValueError:
    return ValueError(f"BatchJobOverrides {name}={value!r}: {fix}")


def _is_number(value: Any) -> bool:
    """A real, finite number; ``True``/``False`` are not numbers here, and neither are strings."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_whole(value: Any) -> bool:
    return _is_number(value) and int(value) == value


def _vcpu(value: Any) -> str:
    if not _is_number(value) or value <= 0:
        raise _fail("vcpu", value, "use a positive number of vCPUs such as 1 or 2")
    if _is_whole(value):
        return str(int(value))
    if value in FARGATE_FRACTIONAL_VCPUS:
        return f"{float(value):g}"
    if value < 1:
        fix = "use 0.25 or 0.5 (fractional vCPUs run only on Fargate) or a whole number such as 1"
    else:
        fix = f"use a whole number of vCPUs such as {math.floor(value)} or {math.ceil(value)}"
    raise _fail("vcpu", value, fix)


def _memory_mib(value: Any) -> str:
    if not _is_number(value) or value <= 0:
        raise _fail("memory_mib", value, "use a positive whole number of MiB such as 2048")
    if not _is_whole(value):
        if value < 1:
            suggestion = max(1, round(value * 1024))
            fix = f"use a whole number of MiB such as {suggestion} (the unit is MiB, not GiB)"
        else:
            fix = f"use a whole number of MiB such as {math.floor(value)}"
        raise _fail("memory_mib", value, fix)
    return str(int(value))


def _gpu(value: Any) -> int:
    if not _is_whole(value) or value < 0:
        raise _fail("gpu", value, "use a whole number of GPUs ≥ 0 such as 1")
    return int(value)


def _scheduling_priority(value: Any) -> int:
    if not _is_whole(value) or not 0 <= value <= MAX_SCHEDULING_PRIORITY:
        fix = f"use a whole number from 0 to {MAX_SCHEDULING_PRIORITY} (higher runs first)"
        raise _fail("scheduling_priority", value, fix)
    return int(value)


def _strings(field: str, mapping: Mapping[Any, Any]) -> dict[str, str]:
    """Names and values as the strings Batch takes; a number value is converted with ``str()``."""
    if not isinstance(mapping, Mapping):
        raise _fail(field, mapping, 'use a dict of names to string values such as {"NAME": "value"}')
    converted = {}
    for name, value in mapping.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"BatchJobOverrides {field} name {name!r}: use a non-empty string")
        if isinstance(value, str):
            converted[name] = value
        elif _is_number(value):
            converted[name] = str(value)
        else:
            if value is None:
                fix = "use a string; leave the name out to not set it"
            elif isinstance(value, bool):
                fix = 'use the string the program expects, such as "true" or "1"'
            else:
                fix = "use a string (or a number, which is sent as str(value))"
            raise ValueError(f"BatchJobOverrides {field}[{name!r}]={value!r}: {fix}")
    return converted


class BatchJobOverrides(dict):
    """``executor_config=BatchJobOverrides(vcpu=2, memory_mib=4096, timeout=timedelta(hours=1))``.

    Every value is checked here, so a mistake fails when the DAG is parsed, with a ValueError naming
    the field, instead of being rounded or stringified into a request Batch would run differently:

    - ``vcpu``: a whole number ≥ 1, or 0.25 or 0.5 (Fargate only; the exact Fargate sizes and the
      platform are checked before submit). Integral floats such as ``2.0`` are accepted.
    - ``memory_mib``: a positive whole number of MiB (``2048.0`` is accepted, ``2048.9`` and ``0.5``
      are not).
    - ``gpu``: a whole number ≥ 0; ``0`` adds no GPU requirement.
    - ``timeout``: a ``timedelta`` of at least 60 seconds.
    - ``scheduling_priority``: a whole number from 0 to 9999.
    - ``environment`` and ``tags``: string names; values are strings, or numbers (``int``/``float``),
      which are converted with ``str()`` (``1`` is sent as ``"1"``). ``None``, booleans and other
      types are rejected: ``None`` would be sent as ``"None"`` and ``True`` as ``"True"``, which is
      almost surely not what the program reading the variable expects.

    Booleans and strings are not accepted where a number is expected.
    """

    def __init__(
        self,
        *,
        vcpu: float | None = None,
        memory_mib: int | None = None,
        gpu: int | None = None,
        timeout: timedelta | None = None,
        environment: Mapping[str, str | int | float] | None = None,
        job_queue: str | None = None,
        job_definition: str | None = None,
        share_identifier: str | None = None,
        scheduling_priority: int | None = None,
        tags: Mapping[str, str | int | float] | None = None,
    ) -> None:
        super().__init__()
        requirements = []
        if vcpu is not None:
            requirements.append({"type": "VCPU", "value": _vcpu(vcpu)})
        if memory_mib is not None:
            requirements.append({"type": "MEMORY", "value": _memory_mib(memory_mib)})
        if gpu is not None and (gpus := _gpu(gpu)):
            requirements.append({"type": "GPU", "value": str(gpus)})
        container: dict = {}
        if requirements:
            container["resourceRequirements"] = requirements
        if environment is not None and (variables := _strings("environment", environment)):
            container["environment"] = [{"name": name, "value": value} for name, value in variables.items()]
        if container:
            self["containerOverrides"] = container
        if timeout is not None:
            if not isinstance(timeout, timedelta):
                raise _fail("timeout", timeout, "use a timedelta such as timedelta(hours=1)")
            seconds = math.ceil(timeout.total_seconds())
            if seconds < MIN_TIMEOUT_SECONDS:
                raise ValueError(
                    f"BatchJobOverrides timeout={timeout}: "
                    f"AWS Batch needs at least {MIN_TIMEOUT_SECONDS} seconds"
                )
            self["timeout"] = {"attemptDurationSeconds": seconds}
        if scheduling_priority is not None:
            self["schedulingPriorityOverride"] = _scheduling_priority(scheduling_priority)
        for key, value in (
            ("jobQueue", job_queue),
            ("jobDefinition", job_definition),
            ("shareIdentifier", share_identifier),
        ):
            if value:
                self[key] = value
        if tags is not None and (checked := _strings("tags", tags)):
            self["tags"] = checked
