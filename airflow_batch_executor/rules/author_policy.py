"""What a DAG author may ask of a job and of its job definition: the one statement of it (pure).

Who asks: anyone who can get a DAG file deployed writes ``executor_config`` (a raw dict or a
``BatchJobOverrides``, which is a dict the author may also change after building it). The scheduler
acts on it with its own AWS rights: it registers job definitions, passes roles and submits jobs. So
every request is held to what an operator allowed, here, before anything is registered or sent; a
task that asks for more fails with refusals that each name the field, the option that governs it and
the fix. The default allows nothing that reaches past the task's own container and role.

``jobDefinitionOverrides.containerProperties``: every field of botocore's RegisterJobDefinition
``containerProperties`` is put in exactly one class (a unit test fails when botocore adds a field, so
a new field is classified on purpose; until then it is refused as unknown):

- **Allowed as they are**, since they stay inside the container and the task's role: ``image``;
  ``mountPoints``; ``readonlyRootFilesystem`` (restricts); ``ulimits`` (resource limits of the
  container's own processes); ``ephemeralStorage``, ``fargatePlatformConfiguration``,
  ``runtimePlatform`` (size and platform); ``linuxParameters`` ``sharedMemorySize``, ``tmpfs``,
  ``maxSwap``, ``swappiness``, ``initProcessEnabled`` (memory and an init process inside the
  container); ``logConfiguration`` ``logDriver`` and ``options``; ``volumes`` that are scratch
  (no host path) or EFS (reached over the network the job has anyway, with the job's role when IAM
  authorisation is on); ``jobRoleArn`` / ``executionRoleArn`` when ``allowed_job_role_arns`` lists
  them.
- **Gated by an option, refused by default**, since each gives the job its host (on EC2 the ECS agent
  there serves every job's role credentials, other teams' too): ``privileged: true``
  (``allow_privileged_containers``), a volume's ``host.sourcePath`` (``allowed_host_paths``: a listed
  path allows itself and what is beneath it), ``linuxParameters.devices[].hostPath``
  (``allowed_devices``, exact paths) and ``user`` naming root (``allow_root_user``; other users are
  allowed).
- **Refused always**, since each escapes the container or grants what the task's role does not have;
  the fix is a job definition the operator made and listed in ``allowed_job_definitions``:
  ``secrets`` and ``logConfiguration.secretOptions`` (fetched with the execution role: any secret it
  may read), ``repositoryCredentials`` (a secret read with the execution role and sent to the image's
  registry, which the task chooses), ``networkConfiguration`` (a public IP address),
  ``enableExecuteCommand`` (a shell in the job for anyone allowed ``ecs:ExecuteCommand``), an
  ``s3filesVolumeConfiguration`` volume (mounted on the host by the container agent with credentials
  this executor has not established to be the task's), and every field not named here.
- **Belongs in SubmitJob's ``containerOverrides``** (``command``, ``environment``, sizes,
  ``instanceType``): refused where the overrides are read (``job_definitions``), with that fix.

Capabilities, host network and the PID or IPC namespaces: a Batch container definition has no such
fields (ECS- and EKS-style definitions, ``ecsProperties`` / ``eksProperties``, and multi-node
``nodeProperties`` do). ``jobDefinitionOverrides`` holds ``containerProperties`` only, and a task
derives only from single-container definitions, so a task cannot ask for them; a definition that has
them runs only when an operator lists it in ``allowed_job_definitions``.

What the image itself does is outside this module: a task may choose its image, and an image's own
``USER`` may be root (``allow_root_user`` stops only the explicit ask). Root in an unprivileged
container without host paths or devices does not reach the host; those three are gated.

Job definitions a task names (``jobDefinition``): the operator's own (``job_definition``, or
``submit_job_kwargs``'s) and those ``allowed_job_definitions`` lists, compared by name (a revision or
ARN names the same definition). Their roles, and those of any base a derived definition comes from,
must be allowed: ``allowed_job_role_arns`` plus the roles of the operator's own definitions. That needs
DescribeJobDefinitions, so it is checked on the submit threads (``RequestFactory.place``), still before
anything is registered or submitted; everything here that needs no AWS call is checked when the
request is built, in the scheduler's heartbeat.

The request: Batch retries a job after its container started, which would run the task's try again,
so a task's (or ``submit_job_kwargs``'s) ``retryStrategy.attempts`` must be 1, and ``arrayProperties``
(every child would run the same try) is refused. Airflow's ``retries`` are the way to retry a task.

The environment: a task may set its own variables, but not those its job's bootstrap trusts to find
its workload. ``ECS_CONTAINER_METADATA_URI_V4`` tells an array child which ECS task it is, and so which
workload it may take; the delivery wait decides how long a child holds its place on a host. Batch
itself refuses ``AWS_BATCH_*`` names. An operator may still set the wait, in ``submit_job_kwargs`` or
the job definition.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_batch_executor.definitions.derive import SUBMIT_OVERRIDABLE
from airflow_batch_executor.errors import TaskConfigError
from airflow_batch_executor.job_contract import DELIVERY_WAIT_VARIABLE, TASK_METADATA_VARIABLE
from airflow_batch_executor.options import ExecutorOptions, normal_path

PROPERTIES = "jobDefinitionOverrides.containerProperties"
DEFINITION_FIX = (
    "set it on a job definition, list that definition in [aws_batch_executor] allowed_job_definitions "
    "and name it with the task's jobDefinition"
)
ALLOWED_FIELDS = frozenset(
    {
        "image",
        "jobRoleArn",
        "executionRoleArn",
        "volumes",
        "mountPoints",
        "readonlyRootFilesystem",
        "ulimits",
        "linuxParameters",
        "logConfiguration",
        "ephemeralStorage",
        "fargatePlatformConfiguration",
        "runtimePlatform",
    }
)
GATED_FIELDS = {"privileged": "allow_privileged_containers", "user": "allow_root_user"}
REFUSED_FIELDS = {
    "secrets": "is fetched with the execution role, so a task could read any secret that role may read",
    "repositoryCredentials": (
        "is a secret read with the execution role and sent to the image's registry, which the task chooses"
    ),
    "networkConfiguration": "can give the job a public IP address",
    "enableExecuteCommand": "opens a shell in the job to anyone allowed ecs:ExecuteCommand",
}
LINUX_PARAMETERS_ALLOWED = frozenset(
    {"sharedMemorySize", "tmpfs", "maxSwap", "swappiness", "initProcessEnabled"}
)
LINUX_PARAMETERS_GATED = {"devices": "allowed_devices"}
LOG_CONFIGURATION_ALLOWED = frozenset({"logDriver", "options"})
LOG_CONFIGURATION_REFUSED = {"secretOptions": REFUSED_FIELDS["secrets"]}
VOLUME_ALLOWED = frozenset({"name", "host", "efsVolumeConfiguration"})
VOLUME_REFUSED = {
    "s3filesVolumeConfiguration": (
        "is mounted on the host by the container agent with credentials not established to be the task's"
    )
}
ROLE_KEYS = ("jobRoleArn", "executionRoleArn", "taskRoleArn")
_ROOT_UID = re.compile(r"[+-]?0+")


@dataclass(frozen=True)
class Refusal:
    """One thing a task asked for and may not have: where, why, the option that governs it, the fix.

    ``problem`` names the option; ``option`` is None for what no option allows (a second run of a try).
    """

    field: str
    problem: str
    option: str | None
    fix: str

    def __str__(self) -> str:
        return f"{self.field} {self.problem}"


def refusal_error(refusals: Iterable[Refusal]) -> TaskConfigError:
    """The error that fails the task: every refusal and its fix, numbered alike when there are several."""
    refusals = list(refusals)
    lead = "executor_config asks for what a DAG author may not have: "
    if len(refusals) == 1:
        return TaskConfigError(lead + str(refusals[0]), refusals[0].fix)
    numbered = list(enumerate(refusals, 1))
    return TaskConfigError(
        lead + " ".join(f"({n}) {refusal};" for n, refusal in numbered).rstrip(";"),
        " ".join(f"({n}) {refusal.fix};" for n, refusal in numbered).rstrip(";"),
    )


# ---------------------------------------------------------------- paths


def host_path_allowed(path: Any, allowed: Iterable[str]) -> bool:
    """Whether ``allowed`` (normal paths) lists ``path`` or a directory above it."""
    normal = normal_path(path)
    if normal is None:
        return False
    return any(root == "/" or normal == root or normal.startswith(root + "/") for root in allowed)


def names_root(user: str) -> bool:
    """Whether a container ``user`` (``name``, ``uid``, ``name:group``, ``uid:gid``) is root."""
    name = user.split(":", 1)[0].strip()
    return name == "root" or bool(_ROOT_UID.fullmatch(name))


def _listed(values: tuple[str, ...]) -> str:
    return ", ".join(values) if values else "none"


# ---------------------------------------------------------------- job definition fields


def _unknown(field: str, what: str = "is not a field a task may set") -> Refusal:
    problem = f"{what}; only a job definition in [aws_batch_executor] allowed_job_definitions may hold it"
    return Refusal(field, problem, "allowed_job_definitions", DEFINITION_FIX)


def _host_volume_refusal(field: str, path: Any, options: ExecutorOptions) -> Refusal | None:
    if path is None or path == "" or host_path_allowed(path, options.allowed_host_paths):
        return None
    if normal_path(path) is None:
        problem = (
            f"{path!r} is not an absolute path without '..', as [aws_batch_executor] allowed_host_paths "
            "requires"
        )
    else:
        listed = _listed(options.allowed_host_paths)
        problem = (
            f"{path!r} is a host path outside those [aws_batch_executor] allowed_host_paths lists ({listed})"
        )
    return Refusal(
        field,
        problem,
        "allowed_host_paths",
        "use an EFS or scratch volume (no host path), or add the path to [aws_batch_executor] "
        "allowed_host_paths if every DAG author may use it on the instances",
    )


def _volume_refusals(volumes: Any, options: ExecutorOptions) -> Iterator[Refusal]:
    for index, volume in enumerate(volumes if isinstance(volumes, list) else []):
        if not isinstance(volume, Mapping):
            continue
        field = f"{PROPERTIES}.volumes[{index}]"
        for key in sorted(set(volume) - VOLUME_ALLOWED):
            yield _unknown(f"{field}.{key}", VOLUME_REFUSED.get(key, "is not a field a task may set"))
        host = volume.get("host")
        if isinstance(host, Mapping):
            for key in sorted(set(host) - {"sourcePath"}):
                yield _unknown(f"{field}.host.{key}")
            if refusal := _host_volume_refusal(f"{field}.host.sourcePath", host.get("sourcePath"), options):
                yield refusal


def _mounted_base_host_volumes(
    asked: Mapping[str, Any], base: Mapping[str, Any], options: ExecutorOptions
) -> Iterator[Refusal]:
    """Mount points a task adds to host volumes it did not state, kept from the base definition."""
    if "volumes" in asked or not isinstance(asked.get("mountPoints"), list):
        return
    mounted = {mount.get("sourceVolume") for mount in asked["mountPoints"] if isinstance(mount, Mapping)}
    for volume in base.get("volumes") or []:
        if isinstance(volume, Mapping) and volume.get("name") in mounted:
            path = (volume.get("host") or {}).get("sourcePath")
            field = f"{PROPERTIES}.mountPoints (volume {volume.get('name')!r} of the base definition)"
            if refusal := _host_volume_refusal(field, path, options):
                yield refusal


def _linux_refusals(linux: Any, options: ExecutorOptions) -> Iterator[Refusal]:
    if not isinstance(linux, Mapping):
        return
    for key in sorted(set(linux) - LINUX_PARAMETERS_ALLOWED - set(LINUX_PARAMETERS_GATED)):
        yield _unknown(f"{PROPERTIES}.linuxParameters.{key}")
    devices = linux.get("devices")
    for index, device in enumerate(devices if isinstance(devices, list) else []):
        path = device.get("hostPath") if isinstance(device, Mapping) else None
        if normal_path(path) is not None and normal_path(path) in options.allowed_devices:
            continue
        yield Refusal(
            f"{PROPERTIES}.linuxParameters.devices[{index}].hostPath",
            f"{path!r} is a host device [aws_batch_executor] allowed_devices does not list "
            f"({_listed(options.allowed_devices)})",
            LINUX_PARAMETERS_GATED["devices"],
            "drop the device, or add its exact path to [aws_batch_executor] allowed_devices if every DAG "
            "author may use it on the instances",
        )


def _log_refusals(log: Any) -> Iterator[Refusal]:
    if not isinstance(log, Mapping):
        return
    for key in sorted(set(log) - LOG_CONFIGURATION_ALLOWED):
        why = LOG_CONFIGURATION_REFUSED.get(key, "is not a field a task may set")
        yield _unknown(f"{PROPERTIES}.logConfiguration.{key}", why)


def _matches(pattern: str, value: str) -> bool:
    return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern


def role_refusals(asked: Mapping[str, Any], allowed_roles: tuple[str, ...]) -> list[Refusal]:
    """Roles a task sets that ``allowed_job_role_arns`` does not allow (the scheduler could pass any)."""
    refusals = []
    for field in ("jobRoleArn", "executionRoleArn"):
        arn = asked.get(field)
        if arn is None or any(_matches(pattern, arn) for pattern in allowed_roles):
            continue
        refusals.append(
            Refusal(
                f"{PROPERTIES}.{field}",
                f"{arn!r} is not allowed by [aws_batch_executor] allowed_job_role_arns "
                f"(allowed: {', '.join(allowed_roles) if allowed_roles else 'none: the option is empty'})",
                "allowed_job_role_arns",
                "add the role to [aws_batch_executor] allowed_job_role_arns (and the scheduler's "
                "iam:PassRole), or remove it from the task",
            )
        )
    return refusals


def definition_refusals(
    asked: Mapping[str, Any], options: ExecutorOptions, base: Mapping[str, Any] | None = None
) -> list[Refusal]:
    """What the task's ``containerProperties`` ask for that the options do not allow.

    With ``base`` (the base definition's ``containerProperties``, known on the submit threads), mount
    points the task adds to host volumes of the base are held to the same rule as its own volumes.
    """
    refusals = [
        _unknown(f"{PROPERTIES}.{field}", REFUSED_FIELDS.get(field, "is not a field a task may set"))
        for field in sorted(set(asked) - ALLOWED_FIELDS - set(GATED_FIELDS) - SUBMIT_OVERRIDABLE)
    ]
    if asked.get("privileged") is True and not options.allow_privileged_containers:
        refusals.append(
            Refusal(
                f"{PROPERTIES}.privileged",
                "is true: a privileged container controls its host, and [aws_batch_executor] "
                "allow_privileged_containers is False",
                GATED_FIELDS["privileged"],
                "drop privileged, or set [aws_batch_executor] allow_privileged_containers = True if every "
                "DAG author may control the instances",
            )
        )
    user = asked.get("user")
    if isinstance(user, str) and names_root(user) and not options.allow_root_user:
        refusals.append(
            Refusal(
                f"{PROPERTIES}.user",
                f"{user!r} runs the container as root, and [aws_batch_executor] allow_root_user is False",
                GATED_FIELDS["user"],
                'run as another user (e.g. "1000"), or set [aws_batch_executor] allow_root_user = True',
            )
        )
    refusals += _volume_refusals(asked.get("volumes"), options)
    if base is not None:
        refusals += _mounted_base_host_volumes(asked, base, options)
    refusals += _linux_refusals(asked.get("linuxParameters"), options)
    refusals += _log_refusals(asked.get("logConfiguration"))
    refusals += role_refusals(asked, options.allowed_job_role_arns)
    return refusals


# ---------------------------------------------------------------- job definitions a task names


def definition_name(reference: str) -> str:
    """The name in a job definition reference: ``name``, ``name:revision`` or an ARN."""
    tail = reference.rsplit("job-definition/", 1)[-1] if reference.startswith("arn:") else reference
    return tail.split(":", 1)[0]


def operator_definitions(options: ExecutorOptions) -> tuple[str, ...]:
    """The job definitions the operator configured: ``job_definition`` and ``submit_job_kwargs``'s."""
    chosen = options.submit_job_kwargs.get("jobDefinition")
    return tuple(dict.fromkeys([options.job_definition, *([chosen] if isinstance(chosen, str) else [])]))


def job_definition_refusals(config: Mapping[str, Any], options: ExecutorOptions) -> list[Refusal]:
    """The task's ``jobDefinition``, unless it is the operator's own or allowed_job_definitions lists it."""
    asked = config.get("jobDefinition")
    if not isinstance(asked, str):
        return []
    name = definition_name(asked)
    if name in {definition_name(own) for own in operator_definitions(options)}:
        return []
    if any(_matches(pattern, name) for pattern in options.allowed_job_definitions):
        return []
    return [
        Refusal(
            "jobDefinition",
            f"{asked!r} names a job definition [aws_batch_executor] allowed_job_definitions does not list "
            f"({_listed(options.allowed_job_definitions)})",
            "allowed_job_definitions",
            f"add {name!r} (or a prefix ending in *) to [aws_batch_executor] allowed_job_definitions once "
            "its roles and container settings are fit for every DAG author, or drop jobDefinition",
        )
    ]


def definition_roles(definition: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every (field, role ARN) a job definition record gives its jobs, in any of its property kinds."""
    found: list[tuple[str, str]] = []

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key in ROLE_KEYS and isinstance(item, str):
                    found.append((key, item))
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk({key: value for key, value in definition.items() if key != "tags"})
    return found


def chosen_definition_refusals(
    definition: Mapping[str, Any], allowed_roles: Iterable[str], *, derived: bool = False
) -> list[Refusal]:
    """Roles of a job definition a task chose (to run on, or to derive from) that are not allowed.

    ``allowed_roles``: ``allowed_job_role_arns`` plus the roles of the operator's own definitions.
    Role ARNs are found in every property kind (container, ECS task, multi-node); an EKS definition's
    service account is no role ARN and is not checked here: list EKS definitions only when theirs is
    fit for every DAG author.
    """
    allowed = tuple(allowed_roles)
    name = definition.get("jobDefinitionName") or definition.get("jobDefinitionArn")
    how = "the base of the task's derived definition" if derived else "the task's job definition"
    return [
        Refusal(
            "jobDefinition",
            f"{name!r} ({how}) gives its jobs the {field} {arn!r}, which is neither in "
            "[aws_batch_executor] allowed_job_role_arns nor a role of the configured job definition",
            "allowed_job_role_arns",
            "give the definition a role [aws_batch_executor] allowed_job_role_arns lists, or add its role "
            "there (and to the scheduler's iam:PassRole)",
        )
        for field, arn in definition_roles(definition)
        if not any(_matches(pattern, arn) for pattern in allowed)
    ]


# ---------------------------------------------------------------- the request


RESERVED_VARIABLES = {
    TASK_METADATA_VARIABLE: "is set by ECS; an array child learns from it which ECS task, and so which "
    "workload, is its own",
    DELIVERY_WAIT_VARIABLE: "is the operator's: how long an array child waits for its workload on a host",
}


def environment_refusals(config: Mapping[str, Any]) -> list[Refusal]:
    """Variables in a task's ``containerOverrides.environment`` that the job's bootstrap trusts."""
    overrides = config.get("containerOverrides")
    environment = overrides.get("environment") if isinstance(overrides, Mapping) else None
    if not isinstance(environment, list):
        return []
    names = {entry.get("name") for entry in environment if isinstance(entry, Mapping)}
    return [
        Refusal(
            f"executor_config containerOverrides.environment {name}",
            why,
            None,
            f"remove {name} from the task's environment",
        )
        for name, why in RESERVED_VARIABLES.items()
        if name in names
    ]


def request_refusals(config: Mapping[str, Any], where: str = "executor_config") -> list[Refusal]:
    """Request fields that would make Batch run one try more than once."""
    refusals = []
    strategy = config.get("retryStrategy")
    attempts = strategy.get("attempts") if isinstance(strategy, Mapping) else None
    if isinstance(attempts, int) and not isinstance(attempts, bool) and attempts != 1:
        refusals.append(
            Refusal(
                f"{where} retryStrategy.attempts",
                f"is {attempts}: a Batch retry after the container started would run the task's try again",
                None,
                "use Airflow's retries on the task instead, and drop retryStrategy.attempts "
                "(retryStrategy with attempts 1 is what every job gets)",
            )
        )
    if config.get("arrayProperties") is not None:
        refusals.append(
            Refusal(
                f"{where} arrayProperties",
                "makes an array job, each child of which would run the task's try",
                None,
                "drop arrayProperties; expand (map) the task in Airflow to run it many times",
            )
        )
    return refusals
