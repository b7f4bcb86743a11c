"""The ``[aws_batch_executor]`` options: read once, validated, and turned into a typed value.

Defaults come from ``config_templates/config.yml`` (the same file that documents the options), so the
documentation and the behaviour cannot drift apart. Every problem is reported as a
:class:`~airflow_batch_executor.errors.OptionError` naming the option and the fix, which stops the
scheduler at start-up instead of failing tasks one by one later.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from airflow_batch_executor.errors import SECTION, OptionError
from airflow_batch_executor.job_contract import is_role_arn_or_prefix, split_s3_uri
from airflow_batch_executor.provider_info import load_config_description
from airflow_batch_executor.requests.queue_ladder import EXAMPLE, OPTION, LadderError, Rung, parse_ladder

_QUEUE_URL_PATTERN = re.compile(r"^https?://[^/\s]+(/[^/\s]+)?/[\w-]+(\.fifo)?$")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_DEFINITION_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}|[A-Za-z0-9_-]{0,127}\*")
MAX_RECEIVE_CONCURRENCY = 50
"""Each receive loop is a thread with up to two connections; beyond 50, a typo (500) would open a
thousand connections for no gain: 50 long polls of 10 messages each take in thousands of events a
second."""


def normal_path(path: Any) -> str | None:
    """An absolute path without ``.``, empty parts or a trailing ``/``; None when relative or with ``..``.

    ``..`` is refused, not resolved: what it resolves to on the host (through symlinks) is not known here.
    """
    if not isinstance(path, str) or not path.startswith("/"):
        return None
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        return None
    return "/" + "/".join(parts)


class ConfigSource(Protocol):
    """The part of Airflow's config parser (or an executor's ``ExecutorConf``) we read from.

    An ``ExecutorConf`` also has a ``team_name``: it then reads the team's own values, and only those.
    """

    def get(self, section: str, key: str, fallback: Any = ...) -> Any: ...


@dataclass(frozen=True)
class ExecutorOptions:
    """Typed, validated ``[aws_batch_executor]`` options."""

    conn_id: str
    region_name: str | None
    job_queue: str
    job_definition: str
    job_name: str | None
    submit_job_kwargs: dict[str, Any]
    max_submit_job_attempts: int
    check_health_on_startup: bool
    terminate_jobs_on_shutdown: bool
    submit_rate_limit: float
    submit_concurrency: int
    status_poll_interval: float
    max_pending_seconds: float
    share_identifier: str | None
    task_log_lines: int
    allowed_job_role_arns: tuple[str, ...] = ()
    allowed_job_definitions: tuple[str, ...] = ()
    allow_privileged_containers: bool = False
    allowed_host_paths: tuple[str, ...] = ()
    allowed_devices: tuple[str, ...] = ()
    allow_root_user: bool = False
    workload_transport: S3Location | None = None
    workload_kms_key_id: str | None = None
    array_jobs: bool = False

    status_queue_url: str | None = None
    status_reconcile_interval: float = 120.0
    status_receive_concurrency: int = 8
    queue_fallbacks: dict[str, Rung] = field(default_factory=dict)
    """Job queue → where its jobs go after Spot reclaims (see ``requests.queue_ladder``)."""
    team_name: str | None = None
    """The team whose executor these options configure (multi-team mode); None for the global one."""


@dataclass(frozen=True)
class S3Location:
    """Where workloads are handed to jobs out of band: ``s3://bucket/prefix``."""

    bucket: str
    prefix: str

    def scoped(self, team: str | None) -> S3Location:
        """This executor's own part of the prefix: ``teams/<team>`` for a team's executor, ``global``
        for the deployment's. Each team's job role can then be limited to its own workloads (a task
        that learns another waiting job's key could otherwise read its token or delete its workload).
        """
        scope = f"teams/{team}" if team else "global"
        return S3Location(self.bucket, f"{self.prefix}/{scope}" if self.prefix else scope)

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


@cache
def option_defaults() -> dict[str, str | None]:
    """Defaults of every option, as documented in ``config_templates/config.yml``."""
    options = load_config_description()[SECTION]["options"]
    return {name: spec.get("default") for name, spec in options.items()}


def _raw(conf: ConfigSource, name: str) -> str | None:
    value = conf.get(SECTION, name, fallback=option_defaults()[name])
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _required(conf: ConfigSource, name: str, what: str) -> str:
    value = _raw(conf, name)
    if value is None:
        raise OptionError(name, f"is not set; it must name the Batch {what}", f"name the Batch {what}")
    return value


def _boolean(conf: ConfigSource, name: str) -> bool:
    value = (_raw(conf, name) or "").lower()
    if value in ("true", "t", "1", "yes", "y", "on"):
        return True
    if value in ("false", "f", "0", "no", "n", "off"):
        return False
    raise OptionError(name, f"is {value!r}, which is not a boolean", "use True or False")


def _number(
    conf: ConfigSource, name: str, kind: type[int | float], minimum: float, maximum: float | None = None
) -> Any:
    raw = _raw(conf, name) or ""
    fix = f"use a number ≥ {minimum}" if maximum is None else f"use a number from {minimum} to {maximum}"
    try:
        value = kind(raw)
    except ValueError:
        raise OptionError(name, f"is {raw!r}, which is not a number", fix) from None
    if value < minimum:
        raise OptionError(name, f"is {value}, below the minimum of {minimum}", fix)
    if maximum is not None and value > maximum:
        raise OptionError(name, f"is {value}, above the maximum of {maximum}", fix)
    return value


def _submit_job_kwargs(conf: ConfigSource) -> dict[str, Any]:
    raw = _raw(conf, "submit_job_kwargs") or "{}"
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as err:
        raise OptionError(
            "submit_job_kwargs",
            f"is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})",
            'write a JSON object such as {"tags": {"team": "data"}}',
        ) from None
    if not isinstance(value, dict):
        raise OptionError(
            "submit_job_kwargs",
            f"is a JSON {type(value).__name__}, not an object",
            'write a JSON object such as {"tags": {"team": "data"}}',
        )
    return value


def _allowed_roles(conf: ConfigSource) -> tuple[str, ...]:
    entries = [entry.strip() for entry in (_raw(conf, "allowed_job_role_arns") or "").split(",")]
    for entry in filter(None, entries):
        if not is_role_arn_or_prefix(entry):
            raise OptionError(
                "allowed_job_role_arns",
                f"contains {entry!r}, which is neither an IAM role ARN nor a role ARN prefix ending in *",
                "list role ARNs such as arn:aws:iam::123456789012:role/airflow-etl or prefixes such as "
                "arn:aws:iam::123456789012:role/airflow-*, separated by commas",
            )
    return tuple(filter(None, entries))


def _entries(conf: ConfigSource, name: str) -> list[str]:
    return [entry for entry in (part.strip() for part in (_raw(conf, name) or "").split(",")) if entry]


def _allowed_definitions(conf: ConfigSource) -> tuple[str, ...]:
    entries = _entries(conf, "allowed_job_definitions")
    for entry in entries:
        if not _DEFINITION_PATTERN.fullmatch(entry):
            raise OptionError(
                "allowed_job_definitions",
                f"contains {entry!r}, which is neither a job definition name nor a name prefix ending in *",
                "list names without revision or ARN, such as airflow-gpu, or prefixes such as airflow-*, "
                "separated by commas",
            )
    return tuple(dict.fromkeys(entries))


def _absolute_paths(conf: ConfigSource, name: str, example: str) -> tuple[str, ...]:
    """Normal absolute paths; a relative path or one with ``..`` stops start-up."""
    paths = []
    for entry in _entries(conf, name):
        path = normal_path(entry)
        if path is None:
            raise OptionError(
                name,
                f"contains {entry!r}, which is not an absolute path without '..'",
                f"list absolute paths such as {example}, separated by commas",
            )
        paths.append(path)
    return tuple(dict.fromkeys(paths))


_TRANSPORT_FIX = (
    "set it to command, or to s3://bucket/prefix with an existing bucket in the executor's region"
)


def _workload_transport(conf: ConfigSource, team: str | None) -> S3Location | None:
    """None for ``command``; for ``s3://bucket[/prefix]``, this executor's own part of it."""
    raw = _raw(conf, "workload_transport") or "command"
    if raw == "command":
        return None
    if not raw.startswith("s3://"):
        raise OptionError(
            "workload_transport", f"is {raw!r}, neither 'command' nor an s3:// URL", _TRANSPORT_FIX
        )
    try:
        bucket, prefix = split_s3_uri(raw)
    except ValueError:
        raise OptionError(
            "workload_transport", f"is {raw!r}, an s3:// URL without a bucket", _TRANSPORT_FIX
        ) from None
    if not _BUCKET_NAME.fullmatch(bucket):
        raise OptionError(
            "workload_transport",
            f"names the bucket {bucket!r}, which is not a valid S3 bucket name",
            "use the bucket's name: 3-63 lower-case letters, digits, dots and hyphens",
        )
    return S3Location(bucket, prefix.strip("/")).scoped(team)


def _kms_key_id(conf: ConfigSource, transport: S3Location | None) -> str | None:
    key_id = _raw(conf, "workload_kms_key_id")
    if key_id and transport is None:
        raise OptionError(
            "workload_kms_key_id",
            "is set, but workload_transport is command, so nothing is written to S3",
            "set workload_transport to s3://bucket/prefix, or unset workload_kms_key_id",
        )
    return key_id


def _queue_url(conf: ConfigSource) -> str | None:
    url = _raw(conf, "status_queue_url")
    if url is not None and not _QUEUE_URL_PATTERN.match(url):
        raise OptionError(
            "status_queue_url",
            f"is {url!r}, which is not an SQS queue URL",
            "use the queue's URL, such as https://sqs.us-east-1.amazonaws.com/123456789012/airflow-status, "
            "or leave it empty to poll DescribeJobs only",
        )
    return url


def team_of(conf: ConfigSource) -> str | None:
    """The team a config source reads for: an ``ExecutorConf``'s team, None for Airflow's ``conf``."""
    return getattr(conf, "team_name", None)


def load_options(conf: ConfigSource) -> ExecutorOptions:
    """Read and check every option; the first problem found raises :class:`OptionError`.

    The error names the team when ``conf`` reads a team's options, so a multi-team scheduler that
    refuses to start says whose settings are wrong.
    """
    try:
        return _load_options(conf)
    except OptionError as error:
        raise error.for_team(team_of(conf)) from None


def _load_options(conf: ConfigSource) -> ExecutorOptions:
    return ExecutorOptions(
        conn_id=_raw(conf, "conn_id") or "aws_default",
        region_name=_raw(conf, "region_name"),
        job_queue=_required(conf, "job_queue", "job queue (name or ARN) tasks are submitted to"),
        job_definition=_required(conf, "job_definition", "job definition (name, name:revision or ARN)"),
        job_name=_raw(conf, "job_name"),
        submit_job_kwargs=_submit_job_kwargs(conf),
        max_submit_job_attempts=_number(conf, "max_submit_job_attempts", int, 1),
        check_health_on_startup=_boolean(conf, "check_health_on_startup"),
        terminate_jobs_on_shutdown=_boolean(conf, "terminate_jobs_on_shutdown"),
        submit_rate_limit=_number(conf, "submit_rate_limit", float, 0.1),
        submit_concurrency=_number(conf, "submit_concurrency", int, 1),
        status_poll_interval=_number(conf, "status_poll_interval", float, 0.05),
        max_pending_seconds=_number(conf, "max_pending_seconds", float, 0),
        share_identifier=_raw(conf, "share_identifier"),
        task_log_lines=task_log_lines(conf),
        allowed_job_role_arns=_allowed_roles(conf),
        allowed_job_definitions=_allowed_definitions(conf),
        allow_privileged_containers=_boolean(conf, "allow_privileged_containers"),
        allowed_host_paths=_absolute_paths(conf, "allowed_host_paths", "/data/shared"),
        allowed_devices=_absolute_paths(conf, "allowed_devices", "/dev/fuse"),
        allow_root_user=_boolean(conf, "allow_root_user"),
        workload_transport=(transport := _workload_transport(conf, team_of(conf))),
        workload_kms_key_id=_kms_key_id(conf, transport),
        array_jobs=_boolean(conf, "array_jobs"),
        status_queue_url=_queue_url(conf),
        status_reconcile_interval=_number(conf, "status_reconcile_interval", float, 1),
        status_receive_concurrency=_number(
            conf, "status_receive_concurrency", int, 1, MAX_RECEIVE_CONCURRENCY
        ),
        queue_fallbacks=_queue_fallbacks(conf),
        team_name=team_of(conf),
    )


def _queue_fallbacks(conf: ConfigSource) -> dict[str, Rung]:
    try:
        return parse_ladder(_raw(conf, OPTION))
    except LadderError as error:
        raise OptionError(
            OPTION, str(error), f"set it to JSON such as {EXAMPLE}, or leave it empty"
        ) from None


def task_log_lines(conf: ConfigSource) -> int:
    """How many log lines ``get_task_log`` returns; read alone by the api-server."""
    return _number(conf, "task_log_lines", int, 1)


def connection_options(conf: ConfigSource) -> tuple[str, str | None]:
    """The connection id and region alone: all the api-server needs to read task logs."""
    return _raw(conf, "conn_id") or "aws_default", _raw(conf, "region_name")
