"""Job definitions derived for a task that sets what only a job definition can hold (pure).

SubmitJob overrides a container's command, environment and size, but not its image, roles, volumes,
mount points, shared memory, ulimits, ephemeral storage or log configuration. A task that sets any of
them (``executor_config["jobDefinitionOverrides"]["containerProperties"]``, or the matching
``BatchJobOverrides`` fields) runs on a definition derived from its base definition's current ACTIVE
revision with exactly those fields replaced.

The derived definition's name is the base name plus a hash of its whole content, so the same content
always has the same name: two schedulers converge on one definition, a restarted scheduler finds it,
and a new base revision (different content) yields a new name. Its tags say the executor manages it,
which is all ``prune-definitions`` ever deletes.

Which fields a task may set at all, and to what, is :mod:`~airflow_batch_executor.rules.author_policy`'s
to say; this module reads them and derives the definition.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from botocore.model import Shape
from botocore.session import get_session
from botocore.validate import ParamValidator

from airflow_batch_executor.errors import TaskConfigError
from airflow_batch_executor.job_contract import MAX_JOB_DEFINITION_NAME_CHARS, MAX_TAGS_PER_JOB
from airflow_batch_executor.requests.merging import deep_merge
from airflow_batch_executor.requests.sizing import ephemeral_storage_error

OVERRIDES_KEY = "jobDefinitionOverrides"
MANAGED_TAG = "airflow-batch-executor.managed"
BASE_TAG = "airflow-batch-executor.base"
HASH_TAG = "airflow-batch-executor.hash"
REGISTERED_TAG = "airflow-batch-executor.registered-at"
LAST_USED_TAG = "airflow-batch-executor.last-used"
DEFINITION_TEAM_TAG = "airflow-batch-executor.team"
MANAGED_TAGS = frozenset(
    {MANAGED_TAG, BASE_TAG, HASH_TAG, REGISTERED_TAG, LAST_USED_TAG, DEFINITION_TEAM_TAG}
)
HASH_LENGTH = 12
MIN_EFS_PLATFORM_VERSION = (1, 4, 0)

# What SubmitJob can already override: changing these needs no new definition, so they are refused
# here and belong in containerOverrides (the command is the executor's own).
SUBMIT_OVERRIDABLE = frozenset(
    {"command", "environment", "resourceRequirements", "vcpus", "memory", "instanceType"}
)
# Top-level RegisterJobDefinition fields carried over from the base definition as they are.
CARRIED_FIELDS = (
    "type",
    "parameters",
    "schedulingPriority",
    "retryStrategy",
    "propagateTags",
    "timeout",
    "platformCapabilities",
    "consumableResourceProperties",
)
NOT_APPLICABLE_ON_FARGATE = ("sharedMemorySize", "devices", "tmpfs", "maxSwap", "swappiness")


@cache
def _container_properties_shape() -> Shape:
    model = get_session().get_service_model("batch")
    return model.operation_model("RegisterJobDefinition").input_shape.members["containerProperties"]


def container_properties_fields() -> frozenset[str]:
    """Every ``containerProperties`` field a job definition may hold."""
    return frozenset(_container_properties_shape().members)


def definition_overrides(executor_config: Any) -> dict[str, Any]:
    """The ``containerProperties`` a task replaces in its job definition; empty when it replaces none.

    Checked without any AWS call (it runs in the scheduler's heartbeat), against botocore's model of
    RegisterJobDefinition, so a typo fails the task before anything is sent.
    """
    if not isinstance(executor_config, Mapping) or executor_config.get(OVERRIDES_KEY) is None:
        return {}
    raw = executor_config[OVERRIDES_KEY]
    example = f'{{"{OVERRIDES_KEY}": {{"containerProperties": {{"image": "repo/image:tag"}}}}}}'
    if not isinstance(raw, Mapping) or set(raw) - {"containerProperties"}:
        raise TaskConfigError(
            f"executor_config {OVERRIDES_KEY} must be a dict with the one key containerProperties, "
            f"got {raw!r}",
            f"write it as {example}",
        )
    properties = raw.get("containerProperties") or {}
    if not isinstance(properties, Mapping):
        raise TaskConfigError(
            f"executor_config {OVERRIDES_KEY}.containerProperties is a {type(properties).__name__}, "
            "not a dict",
            f"write it as {example}",
        )
    if submit_fields := sorted(SUBMIT_OVERRIDABLE & set(properties)):
        raise TaskConfigError(
            f"executor_config {OVERRIDES_KEY}.containerProperties sets {', '.join(submit_fields)}, which "
            "SubmitJob overrides without a new job definition",
            "set them in containerOverrides (the command is set by the executor)",
        )
    # Log options alone are merged into the base definition's log configuration, which names the driver.
    checked = copy.deepcopy(dict(properties))
    if isinstance(checked.get("logConfiguration"), dict):
        checked["logConfiguration"].setdefault("logDriver", "awslogs")
    report = ParamValidator().validate(checked, _container_properties_shape())
    if report.has_errors():
        problems = "; ".join(line.strip() for line in report.generate_report().splitlines())
        problems = problems.replace(" in input:", ":")
        raise TaskConfigError(
            f"executor_config {OVERRIDES_KEY}.containerProperties is not valid: {problems}",
            "use RegisterJobDefinition's containerProperties names and types "
            "(https://docs.aws.amazon.com/batch/latest/APIReference/API_ContainerProperties.html)",
        )
    return copy.deepcopy(dict(properties))


@dataclass(frozen=True)
class DerivedDefinition:
    """A job definition derived from a base one: its name, content hash and RegisterJobDefinition body."""

    base_name: str
    name: str
    digest: str
    register_request: dict[str, Any]

    @property
    def description(self) -> dict[str, Any]:
        """The definition as DescribeJobDefinitions would show it, for the platform checks."""
        return {key: value for key, value in self.register_request.items() if key != "jobDefinitionName"}


def derived_name(base_name: str, digest: str) -> str:
    """``<base>-<hash>``, cut to Batch's 128 characters by shortening the base part."""
    return f"{base_name[: MAX_JOB_DEFINITION_NAME_CHARS - len(digest) - 1]}-{digest}"


def content_digest(content: Mapping[str, Any]) -> str:
    """A short, stable hash of a definition's content (key order never matters)."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def derive(
    base: Mapping[str, Any], overrides: Mapping[str, Any], team: str | None = None
) -> DerivedDefinition:
    """The definition a task runs on: ``base`` (a DescribeJobDefinitions record) with ``overrides``.

    A team's executor derives definitions of its own (the team is part of the content hash, and a
    tag), so pruning one team's unused definitions never touches another's.
    """
    base_name = base["jobDefinitionName"]
    properties = base.get("containerProperties")
    if not isinstance(properties, Mapping):
        raise TaskConfigError(
            f"the job definition {base_name!r} is not a single-container definition, so a task cannot "
            f"replace its {', '.join(sorted(overrides))}",
            "derive only from container job definitions, or drop jobDefinitionOverrides from the task",
        )
    known = container_properties_fields()
    carried = {key: value for key, value in properties.items() if key in known and value is not None}
    content: dict[str, Any] = {
        key: copy.deepcopy(base[key]) for key in CARRIED_FIELDS if base.get(key) is not None
    }
    content["containerProperties"] = deep_merge(carried, overrides)
    user_tags = {k: v for k, v in (base.get("tags") or {}).items() if k not in MANAGED_TAGS}
    if user_tags:
        content["tags"] = user_tags
    digest = content_digest({"base": base_name, **content, **({"team": team} if team else {})})
    if len(user_tags) + len(MANAGED_TAGS) > MAX_TAGS_PER_JOB:
        raise TaskConfigError(
            f"the job definition {base_name!r} has {len(user_tags)} tags; a derived definition adds "
            f"{len(MANAGED_TAGS)} and Batch allows {MAX_TAGS_PER_JOB}",
            f"remove tags from {base_name!r}",
        )
    name = derived_name(base_name, digest)
    tags = {**user_tags, MANAGED_TAG: "true", BASE_TAG: base_name, HASH_TAG: digest}
    if team:
        tags[DEFINITION_TEAM_TAG] = team
    return DerivedDefinition(base_name, name, digest, {"jobDefinitionName": name, **content, "tags": tags})


def _platform_version(version: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return None


def _fargate_problems(properties: Mapping[str, Any]) -> list[str]:
    problems = []
    if properties.get("ulimits"):
        problems.append(
            "ulimits are not applicable on Fargate; run the task on an EC2 job queue or drop ulimits"
        )
    linux = properties.get("linuxParameters") or {}
    for field in NOT_APPLICABLE_ON_FARGATE:
        if linux.get(field):
            problems.append(
                f"linuxParameters.{field} is not applicable on Fargate; run the task on an EC2 job queue "
                f"or drop {field}"
            )
    if properties.get("privileged"):
        problems.append("privileged containers are not allowed on Fargate; set privileged to false")
    volumes = properties.get("volumes") or []
    for volume in volumes:
        if (volume.get("host") or {}).get("sourcePath"):
            problems.append(
                f"volume {volume.get('name')!r} mounts a host path, which Fargate does not allow; "
                "use an EFS volume, or a volume without host.sourcePath (scratch space)"
            )
    storage = (properties.get("ephemeralStorage") or {}).get("sizeInGiB")
    if storage is not None and (error := ephemeral_storage_error(storage)):
        problems.append(f"ephemeralStorage.sizeInGiB: {error}")
    version = (properties.get("fargatePlatformConfiguration") or {}).get("platformVersion") or "LATEST"
    if any(volume.get("efsVolumeConfiguration") for volume in volumes) and version != "LATEST":
        parsed = _platform_version(version)
        if parsed is None or parsed < MIN_EFS_PLATFORM_VERSION:
            problems.append(
                f"EFS volumes need Fargate platform version 1.4.0 or later; "
                f"fargatePlatformConfiguration.platformVersion is {version!r}: use 1.4.0 or LATEST"
            )
    return problems


def _mount_problems(properties: Mapping[str, Any]) -> list[str]:
    names = [volume.get("name") for volume in properties.get("volumes") or []]
    problems = [
        f"volume name {name!r} is used twice" for name in sorted(set(names), key=str) if names.count(name) > 1
    ]
    for mount in properties.get("mountPoints") or []:
        if mount.get("sourceVolume") not in names:
            problems.append(
                f"mount point {mount.get('containerPath')!r} uses volume {mount.get('sourceVolume')!r}, "
                f"which is not among the definition's volumes ({', '.join(map(str, names)) or 'none'})"
            )
    return problems


def definition_problems(derived: DerivedDefinition) -> list[str]:
    """What the derived definition's platform would reject, each naming the field and what is allowed."""
    description = derived.description
    properties = description["containerProperties"]
    problems = _mount_problems(properties)
    if properties.get("logConfiguration") and not properties["logConfiguration"].get("logDriver"):
        problems.append(
            f"logConfiguration.logDriver is not set: {derived.base_name!r} has no log configuration to add "
            "options to; set log_driver (e.g. awslogs) as well"
        )
    if "FARGATE" in (description.get("platformCapabilities") or []):
        return problems + _fargate_problems(properties)
    if (properties.get("ephemeralStorage") or {}).get("sizeInGiB") is not None:
        problems.append(
            "ephemeralStorage is only available on Fargate; on EC2 size the instance's volume in the "
            "compute environment's launch template instead"
        )
    return problems
