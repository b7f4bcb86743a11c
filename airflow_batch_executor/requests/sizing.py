"""Fargate and EC2 sizing rules for AWS Batch, checked before a job is submitted.

Batch accepts a SubmitJob with a size Fargate cannot run and only fails it later (or leaves it
RUNNABLE forever), far from the task that asked for it.  Checking here lets the executor fail the
task at once with a message that says which value is wrong and what would be accepted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import pairwise

__all__ = [
    "EPHEMERAL_STORAGE_GIB_RANGE",
    "FARGATE_MEMORY_BY_VCPU",
    "check_resources",
    "ec2_vcpu_error",
    "ephemeral_storage_error",
    "fargate_size_error",
    "resource_requirements",
]


def _stepped(low: int, high: int, step: int) -> tuple[int, ...]:
    return tuple(range(low, high + 1, step))


FARGATE_MEMORY_BY_VCPU: Mapping[float, tuple[int, ...]] = {
    0.25: (512, 1024, 2048),
    0.5: _stepped(1024, 4096, 1024),
    1.0: _stepped(2048, 8192, 1024),
    2.0: _stepped(4096, 16384, 1024),
    4.0: _stepped(8192, 30720, 1024),
    8.0: _stepped(16384, 61440, 4096),
    16.0: _stepped(32768, 122880, 8192),
}

EPHEMERAL_STORAGE_GIB_RANGE: tuple[int, int] = (21, 200)

_PLATFORM_ALIASES: Mapping[str, str] = {
    "FARGATE": "FARGATE",
    "FARGATE_SPOT": "FARGATE",
    "EC2": "EC2",
    "SPOT": "EC2",
}


def _num(value: float) -> str:
    return f"{value:g}"


def _or_list(values: Sequence[str]) -> str:
    if len(values) <= 1:
        return "".join(values)
    return f"{', '.join(values[:-1])} or {values[-1]}"


def _describe_sizes(sizes: Sequence[int]) -> str:
    steps = {b - a for a, b in pairwise(sizes)}
    if len(sizes) > 3 and len(steps) == 1:
        return f"{sizes[0]}–{sizes[-1]} MiB in steps of {steps.pop()}"
    return f"{_or_list([str(s) for s in sizes])} MiB"


def _nearest(sizes: Sequence[int], memory_mib: int) -> list[int]:
    below = [s for s in sizes if s < memory_mib]
    above = [s for s in sizes if s > memory_mib]
    return ([below[-1]] if below else []) + ([above[0]] if above else [])


def _vcpus_for(memory_mib: int) -> list[str]:
    return [_num(v) for v, sizes in FARGATE_MEMORY_BY_VCPU.items() if memory_mib in sizes]


def fargate_size_error(vcpu: float, memory_mib: int) -> str | None:
    """Why Fargate would reject this vCPU/memory pair, or None when it is one Fargate offers."""
    sizes = FARGATE_MEMORY_BY_VCPU.get(vcpu) if isinstance(vcpu, (int, float)) else None
    if sizes is not None and memory_mib in sizes:
        return None
    alternatives = _vcpus_for(memory_mib)
    if sizes is None:
        shown = _num(vcpu) if isinstance(vcpu, (int, float)) else repr(vcpu)
        message = (
            f"vCPU {shown} is not a valid Fargate size; "
            f"Fargate accepts {_or_list([_num(v) for v in FARGATE_MEMORY_BY_VCPU])} vCPU"
        )
        if alternatives:
            message += f", and for {memory_mib} MiB use {_or_list(alternatives)} vCPU"
        return message
    nearest = " or ".join(str(s) for s in _nearest(sizes, memory_mib))
    message = (
        f"vCPU {_num(vcpu)} with {memory_mib} MiB is not a valid Fargate size; "
        f"with {_num(vcpu)} vCPU use {_describe_sizes(sizes)} (nearest: {nearest} MiB)"
    )
    if alternatives:
        message += f", or for {memory_mib} MiB use {_or_list(alternatives)} vCPU"
    return message


def ec2_vcpu_error(vcpu: float) -> str | None:
    """Why an EC2 compute environment would reject this vCPU count, or None when it is fine."""
    if isinstance(vcpu, (int, float)) and math.isfinite(vcpu) and vcpu >= 1 and float(vcpu).is_integer():
        return None
    shown = _num(vcpu) if isinstance(vcpu, (int, float)) else repr(vcpu)
    return (
        f"vCPU {shown} is not valid on an EC2 compute environment: EC2 jobs take a whole number "
        "of vCPUs, at least 1 (fractional vCPUs such as 0.25 or 0.5 exist only on Fargate)"
    )


def ephemeral_storage_error(size_gib: int) -> str | None:
    """Why Fargate would reject this ephemeral storage size, or None when it is in range."""
    low, high = EPHEMERAL_STORAGE_GIB_RANGE
    if isinstance(size_gib, int) and not isinstance(size_gib, bool) and low <= size_gib <= high:
        return None
    return (
        f"ephemeral storage of {size_gib!r} GiB is not valid on Fargate: use a whole number from "
        f"{low} to {high} GiB, or leave it unset for the default 20 GiB"
    )


def resource_requirements(container_overrides_or_props: Mapping) -> dict[str, str]:
    """The VCPU/MEMORY/GPU a container asks for, as the strings Batch uses.

    Reads the ``resourceRequirements`` list and falls back to the deprecated top-level
    ``vcpus``/``memory`` keys, which older job definitions still carry; when both are present
    the list wins, as it does in Batch.
    """
    props = container_overrides_or_props if isinstance(container_overrides_or_props, Mapping) else {}
    found: dict[str, str] = {}
    entries = props.get("resourceRequirements")
    for entry in entries if isinstance(entries, (list, tuple)) else ():
        if not isinstance(entry, Mapping):
            continue
        kind, value = entry.get("type"), entry.get("value")
        if isinstance(kind, str) and value is not None:
            found[kind.strip().upper()] = str(value).strip()
    for legacy_key, kind in (("vcpus", "VCPU"), ("memory", "MEMORY")):
        value = props.get(legacy_key)
        if kind not in found and value is not None:
            found[kind] = str(value).strip()
    return found


def _parse_number(name: str, raw: str, expected: str) -> tuple[float | None, str | None]:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        return None, f"{name} value {raw!r} is not a positive number; give {expected}"
    return value, None


def _parse_whole(name: str, raw: str, expected: str) -> tuple[int | None, str | None]:
    value, error = _parse_number(name, raw, expected)
    if error or value is None:
        return None, error
    if not value.is_integer():
        return None, f"{name} value {raw!r} is not a whole number; give {expected}"
    return int(value), None


def _add(problems: list[str], error: str | None) -> None:
    if error:
        problems.append(error)


def check_resources(
    platform: str, requirements: Mapping[str, str], ephemeral_storage_gib: int | None
) -> list[str]:
    """Every sizing problem that would make Batch reject or strand the job; empty when it fits.

    Pass the effective values (job definition merged with overrides).  A missing VCPU or MEMORY
    is not reported: Batch already refuses job definitions without them.
    """
    kind = _PLATFORM_ALIASES.get(platform.strip().upper()) if isinstance(platform, str) else None
    if kind is None:
        return [f"platform {platform!r} is not known; use FARGATE or EC2"]

    problems: list[str] = []
    vcpu: float | None = None
    memory: int | None = None
    if "VCPU" in requirements:
        vcpu, error = _parse_number("VCPU", requirements["VCPU"], "vCPUs as a number such as 1 or 0.5")
        _add(problems, error)
    if "MEMORY" in requirements:
        memory, error = _parse_whole("MEMORY", requirements["MEMORY"], "memory in MiB such as 2048")
        _add(problems, error)
    if "GPU" in requirements:
        _, error = _parse_whole("GPU", requirements["GPU"], "a whole number of GPUs such as 1")
        _add(problems, error)

    if kind == "FARGATE":
        if "GPU" in requirements:
            problems.append("GPUs are not supported on Fargate; run GPU tasks on an EC2 compute environment")
        if vcpu is not None and memory is not None:
            error = fargate_size_error(vcpu, memory)
            _add(problems, error)
        elif vcpu is not None and vcpu not in FARGATE_MEMORY_BY_VCPU:
            problems.append(
                f"vCPU {_num(vcpu)} is not a valid Fargate size; Fargate accepts "
                f"{_or_list([_num(v) for v in FARGATE_MEMORY_BY_VCPU])} vCPU"
            )
        if ephemeral_storage_gib is not None:
            error = ephemeral_storage_error(ephemeral_storage_gib)
            _add(problems, error)
    else:
        if vcpu is not None:
            error = ec2_vcpu_error(vcpu)
            _add(problems, error)
        if ephemeral_storage_gib is not None:
            problems.append(
                "ephemeral storage can only be set for Fargate jobs; on EC2 size the instance's "
                "volume in the compute environment's launch template instead"
            )
    return problems
