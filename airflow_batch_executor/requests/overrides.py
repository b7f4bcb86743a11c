"""``BatchJobOverrides``: per-task Batch settings for DAG authors, checked when the DAG is parsed.

It builds the same SubmitJob overrides a raw ``executor_config`` dict would hold, and is itself a
dict, so Airflow serialises it like any ``executor_config`` and both styles keep working. Checks that
need to know the platform (Fargate sizes, GPUs) happen before submit, against the task's queue.

Fields only a job definition can hold (image, roles, volumes, shared memory, ulimits, ephemeral
storage, log configuration) go under ``jobDefinitionOverrides.containerProperties``; the executor
runs such a task on a job definition derived from its base one (see ``job_definitions``).
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow_batch_executor.definitions.derive import OVERRIDES_KEY
from airflow_batch_executor.job_contract import MAX_SCHEDULING_PRIORITY, is_role_arn
from airflow_batch_executor.job_contract import MIN_ATTEMPT_DURATION_SECONDS as MIN_TIMEOUT_SECONDS
from airflow_batch_executor.requests.sizing import EPHEMERAL_STORAGE_GIB_RANGE, FARGATE_MEMORY_BY_VCPU

# Batch takes fractional vCPUs only on Fargate, and only these; whether the queue is Fargate (and
# which vCPU/memory pairs it takes) is checked before submit, when the job's platform is known.
FARGATE_FRACTIONAL_VCPUS = tuple(vcpu for vcpu in FARGATE_MEMORY_BY_VCPU if vcpu < 1)
ULIMIT_NAMES = (
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
    "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
)  # fmt: skip
LOG_DRIVERS = ("awslogs", "fluentd", "gelf", "journald", "json-file", "splunk", "syslog", "awsfirelens")
_VOLUME_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


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


def _role_arn(field: str, value: Any) -> str:
    if not is_role_arn(value):
        raise _fail(field, value, "use an IAM role ARN such as arn:aws:iam::123456789012:role/airflow-task")
    return value


def _volume_name(value: Any) -> None:
    if not isinstance(value, str) or not _VOLUME_NAME.match(value):
        raise _fail("volumes", value, "name each volume with letters, digits, hyphens and underscores")


def _container_path(value: Any) -> None:
    if not isinstance(value, str) or not value.startswith("/"):
        raise _fail("volumes", value, "use an absolute container_path such as /mnt/data")


@dataclass(frozen=True)
class EfsVolume:
    """An Amazon EFS file system mounted at ``container_path`` (Fargate needs platform 1.4.0 or LATEST).

    ``access_point_id`` turns transit encryption on, which EFS access points require.
    """

    name: str
    file_system_id: str
    container_path: str
    root_directory: str | None = None
    access_point_id: str | None = None
    read_only: bool = False
    transit_encryption: bool = False

    def __post_init__(self) -> None:
        _volume_name(self.name)
        _container_path(self.container_path)
        if not isinstance(self.file_system_id, str) or not self.file_system_id.startswith("fs-"):
            raise _fail(
                "volumes", self.file_system_id, "use an EFS file system id such as fs-0123456789abcdef0"
            )
        if self.access_point_id is not None and not str(self.access_point_id).startswith("fsap-"):
            raise _fail(
                "volumes", self.access_point_id, "use an EFS access point id such as fsap-0123456789abcdef0"
            )
        if self.access_point_id is not None and self.root_directory not in (None, "/"):
            raise _fail(
                "volumes",
                self.root_directory,
                "leave root_directory out with access_point_id: the access point sets the directory",
            )

    def volume(self) -> dict[str, Any]:
        config: dict[str, Any] = {"fileSystemId": self.file_system_id}
        if self.root_directory and not self.access_point_id:
            config["rootDirectory"] = self.root_directory
        if self.transit_encryption or self.access_point_id:
            config["transitEncryption"] = "ENABLED"
        if self.access_point_id:
            config["authorizationConfig"] = {"accessPointId": self.access_point_id}
        return {"name": self.name, "efsVolumeConfiguration": config}


@dataclass(frozen=True)
class HostVolume:
    """A path of the EC2 host (``source_path``), or without it a scratch volume (Fargate too).

    A host path runs only where ``[aws_batch_executor] allowed_host_paths`` lists it (or a directory
    above it): the executor refuses it otherwise, since a host path can give a job its instance.
    """

    name: str
    container_path: str
    source_path: str | None = None
    read_only: bool = False

    def __post_init__(self) -> None:
        _volume_name(self.name)
        _container_path(self.container_path)
        if self.source_path is not None and not str(self.source_path).startswith("/"):
            raise _fail("volumes", self.source_path, "use an absolute host source_path such as /data")

    def volume(self) -> dict[str, Any]:
        return (
            {"name": self.name, "host": {"sourcePath": self.source_path}}
            if self.source_path
            else {"name": self.name}
        )


def _volumes(value: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
        raise _fail("volumes", value, "use a list of EfsVolume(...) or HostVolume(...)")
    volumes, mounts = [], []
    for volume in value:
        if not isinstance(volume, (EfsVolume, HostVolume)):
            raise _fail("volumes", volume, "use EfsVolume(...) or HostVolume(...) for each volume")
        if any(existing["name"] == volume.name for existing in volumes):
            raise _fail("volumes", volume.name, "give each volume its own name")
        volumes.append(volume.volume())
        mount = {
            "sourceVolume": volume.name,
            "containerPath": volume.container_path,
            "readOnly": volume.read_only,
        }
        mounts.append(mount)
    return volumes, mounts


def _ulimits(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, Mapping):
        raise _fail("ulimits", value, 'use a dict such as {"nofile": 65536} or {"nofile": (1024, 65536)}')
    ulimits = []
    for name, limit in value.items():
        if name not in ULIMIT_NAMES:
            raise _fail("ulimits", name, f"use one of {', '.join(ULIMIT_NAMES)}")
        soft, hard = limit if isinstance(limit, tuple) and len(limit) == 2 else (limit, limit)
        if not (_is_whole(soft) and _is_whole(hard)) or not 0 <= soft <= hard:
            raise _fail(
                "ulimits", {name: limit}, "use a whole number ≥ 0, or a (soft, hard) pair with soft ≤ hard"
            )
        ulimits.append({"name": name, "softLimit": int(soft), "hardLimit": int(hard)})
    return ulimits


def _ephemeral_storage_gib(value: Any) -> int:
    low, high = EPHEMERAL_STORAGE_GIB_RANGE
    if not _is_whole(value) or not low <= value <= high:
        raise _fail(
            "ephemeral_storage_gib", value, f"use a whole number of GiB from {low} to {high} (Fargate only)"
        )
    return int(value)


def _log_configuration(driver: Any, options: Any) -> dict[str, Any]:
    configuration: dict[str, Any] = {}
    if driver is not None:
        if driver not in LOG_DRIVERS:
            raise _fail("log_driver", driver, f"use one of {', '.join(LOG_DRIVERS)}")
        configuration["logDriver"] = driver
    if options is not None and (checked := _strings("log_options", options)):
        configuration["options"] = checked
    return configuration


def _definition_properties(
    *,
    image: Any,
    job_role_arn: Any,
    execution_role_arn: Any,
    volumes: Any,
    shared_memory_mib: Any,
    ulimits: Any,
    ephemeral_storage_gib: Any,
    log_driver: Any,
    log_options: Any,
) -> dict[str, Any]:
    """The ``containerProperties`` fields only a job definition can hold, checked one by one."""
    properties: dict[str, Any] = {}
    if image is not None:
        if not isinstance(image, str) or not image.strip() or image != image.strip():
            raise _fail(
                "image",
                image,
                "use an image reference such as 123456789012.dkr.ecr.eu-west-1.amazonaws.com/etl:1.2",
            )
        properties["image"] = image
    if job_role_arn is not None:
        properties["jobRoleArn"] = _role_arn("job_role_arn", job_role_arn)
    if execution_role_arn is not None:
        properties["executionRoleArn"] = _role_arn("execution_role_arn", execution_role_arn)
    if volumes is not None:
        properties["volumes"], properties["mountPoints"] = _volumes(volumes)
    if shared_memory_mib is not None:
        if not _is_whole(shared_memory_mib) or shared_memory_mib <= 0:
            raise _fail(
                "shared_memory_mib",
                shared_memory_mib,
                "use a positive whole number of MiB such as 1024 (EC2 only)",
            )
        properties["linuxParameters"] = {"sharedMemorySize": int(shared_memory_mib)}
    if ulimits is not None and (checked := _ulimits(ulimits)):
        properties["ulimits"] = checked
    if ephemeral_storage_gib is not None:
        properties["ephemeralStorage"] = {"sizeInGiB": _ephemeral_storage_gib(ephemeral_storage_gib)}
    if configuration := _log_configuration(log_driver, log_options):
        properties["logConfiguration"] = configuration
    return properties


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

    Fields only a job definition can hold make the executor run the task on a derived job definition
    (the base definition with these fields replaced, registered once and reused):

    - ``image``: the container image.
    - ``job_role_arn`` / ``execution_role_arn``: IAM role ARNs; the scheduler passes only those listed
      in ``[aws_batch_executor] allowed_job_role_arns``.
    - ``volumes``: ``EfsVolume(...)`` / ``HostVolume(...)`` items, each with its mount point; they
      replace the definition's volumes and mount points. A ``HostVolume`` with a ``source_path`` needs
      ``[aws_batch_executor] allowed_host_paths``.
    - ``shared_memory_mib`` (``/dev/shm``) and ``ulimits`` (``{"nofile": 65536}`` or a ``(soft, hard)``
      pair): EC2 only.
    - ``ephemeral_storage_gib``: 21–200 GiB, Fargate only.
    - ``log_driver`` and ``log_options``: merged into the definition's ``logConfiguration``.

    ``job_definition`` names a job definition other than the configured one; the executor takes only
    those ``[aws_batch_executor] allowed_job_definitions`` lists. What any task may ask for is
    :mod:`~airflow_batch_executor.rules.author_policy`'s to say; this class checks values, not permissions,
    since it cannot know the operator's options.

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
        image: str | None = None,
        job_role_arn: str | None = None,
        execution_role_arn: str | None = None,
        volumes: Sequence[EfsVolume | HostVolume] | None = None,
        shared_memory_mib: int | None = None,
        ulimits: Mapping[str, int | tuple[int, int]] | None = None,
        ephemeral_storage_gib: int | None = None,
        log_driver: str | None = None,
        log_options: Mapping[str, str] | None = None,
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
        properties = _definition_properties(
            image=image,
            job_role_arn=job_role_arn,
            execution_role_arn=execution_role_arn,
            volumes=volumes,
            shared_memory_mib=shared_memory_mib,
            ulimits=ulimits,
            ephemeral_storage_gib=ephemeral_storage_gib,
            log_driver=log_driver,
            log_options=log_options,
        )
        if properties:
            self[OVERRIDES_KEY] = {"containerProperties": properties}
