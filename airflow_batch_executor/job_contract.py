"""The job's contract, written once: AWS Batch's vocabulary and limits, and what our jobs look like.

The first part holds facts of the AWS Batch API (its reference and its service quotas), not choices
of ours. The second holds what the scheduler and a job agree on: the module a job runs, the shape of
its command, its workload object's URI, the bootstrap's exit codes and the tags that say which Airflow
workload a job runs. Every module that needs one imports it from here; this module imports nothing of
ours, so the bootstrap inside a job can use it too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

JOB_STATUSES: tuple[str, ...] = (
    "SUBMITTED",
    "PENDING",
    "RUNNABLE",
    "STARTING",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
)
WAITING_STATUSES: frozenset[str] = frozenset({"SUBMITTED", "PENDING", "RUNNABLE", "STARTING"})
FINAL_STATUSES: frozenset[str] = frozenset({"SUCCEEDED", "FAILED"})

DESCRIBE_JOBS_MAX_IDS = 100
MAX_REASON_CHARS = 1024
MIN_ATTEMPT_DURATION_SECONDS = 60
MAX_TAGS_PER_JOB = 50
MAX_TAG_VALUE_CHARS = 256
MAX_JOB_NAME_CHARS = 128
MAX_JOB_DEFINITION_NAME_CHARS = 128
MAX_SUBMIT_PAYLOAD_BYTES = 30 * 1024
MAX_SCHEDULING_PRIORITY = 9999
MIN_ARRAY_SIZE = 2
"""The fewest children AWS Batch allows an array job: its bound for ``arrayProperties.size``."""
MAX_ARRAY_SIZE = 10_000
"""The most children AWS Batch allows an array job: its bound for ``arrayProperties.size``."""


def batch_reason(text: str) -> str:
    """A reason TerminateJob accepts: Batch rejects longer ones instead of truncating them."""
    return text[:MAX_REASON_CHARS]


DEFINITION_NOT_ACTIVE = re.compile(r"is not in ACTIVE status|does not exist or is not in ACTIVE status")
"""How SubmitJob words its refusal of a job definition that is not (or no longer) ACTIVE:
``JobDefinition arn:... is not in ACTIVE status`` / ``JobDefinition name X does not exist or is not in
ACTIVE status`` (HTTP 400 ClientException)."""


# What a job runs. The scheduler writes these commands and the job's image runs them, so a module named
# here is part of the contract between a scheduler and its worker image, which must carry the same
# release of this package.
TASK_SDK_MODULE = "airflow.sdk.execution_time.execute_workload"
CALLBACK_RUNNER_MODULE = "airflow_batch_executor.in_job.callback_runner"
BOOTSTRAP_MODULE = "airflow_batch_executor.in_job.bootstrap"
_BOOTSTRAP = ("python", "-m", BOOTSTRAP_MODULE)


def runner_command(module: str, workload_json: str) -> list[str]:
    """A command-mode job's command: the runner with the whole workload (token included)."""
    return ["python", "-m", module, "--json-string", workload_json]


def bootstrap_command(object_uri: str) -> list[str]:
    """An S3-mode job's command: the bootstrap and the one object it fetches its workload from."""
    return [*_BOOTSTRAP, object_uri]


def delivery_command(directory_uri: str) -> list[str]:
    """An array job's command, the same for every child: the bootstrap and the directory (a URI ending
    in ``/``) where each child's workload is delivered once its container starts (:func:`delivered_key`)."""
    if not is_delivery_directory(directory_uri):
        raise ValueError(f"a delivery directory ends with '/', got {directory_uri!r}")
    return [*_BOOTSTRAP, directory_uri]


def is_delivery_directory(uri: str) -> bool:
    return uri.endswith("/")


ARRAY_INDEX_VARIABLE = "AWS_BATCH_JOB_ARRAY_INDEX"
"""Set by Batch in each array child's container: the child's index, the only thing siblings differ in."""
TASK_METADATA_VARIABLE = "ECS_CONTAINER_METADATA_URI_V4"
"""Set by ECS in each container: its task metadata endpoint; ``<it>/task`` answers the task's ARN."""
_TASK_ARN = re.compile(
    r"^arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:task/(?:[A-Za-z0-9_-]{1,255}/)?([A-Za-z0-9-]{1,64})$"
)


def task_id(task_arn: str) -> str:
    """An ECS task's id (the last part of its ARN): what only the container of that task attempt knows
    about itself, besides those allowed to list or describe tasks. ValueError for anything else."""
    match = _TASK_ARN.match(task_arn)
    if match is None:
        raise ValueError(f"{task_arn!r} is not an ECS task ARN")
    return match[1]


def delivered_key(directory_key: str, index: int, task_arn: str) -> str:
    """Where one array child's workload is delivered: keyed by its index and its ECS task's id, so a
    sibling (same command, same role, every index known) cannot name it, and a later attempt of the
    same child (a new task) is never given the workload an earlier one received."""
    return f"{directory_key}{index}.{task_id(task_arn)}.json"


def delivered_marker_key(directory: str, index: int) -> str:
    """Written (only where absent, holding the task ARN) before a child's workload is: once it exists no
    scheduler delivers to that child again, whichever attempt of it asks, whoever restarts or races.
    So a try runs at most once at delivery, not only at submission. A key for a directory's key, a URI
    for its ``s3://`` URI."""
    return f"{directory}{index}.delivered"


def array_index(child_id: str) -> int:
    """An array child's index, from its job id ``<array id>:<index>``."""
    return int(child_id.rpartition(":")[2])


def object_uri(command: object) -> str | None:
    """The ``s3://`` object a job's command fetches its workload from; None for a command-mode job."""
    if (
        isinstance(command, list)
        and len(command) == len(_BOOTSTRAP) + 1
        and tuple(command[:-1]) == _BOOTSTRAP
    ):
        return str(command[-1])
    return None


def request_object_uri(request: Mapping[str, Any]) -> str | None:
    """The object a SubmitJob request's job will fetch (None in command mode)."""
    return object_uri((request.get("containerOverrides") or {}).get("command"))


def record_object_uri(record: Mapping[str, Any] | None) -> str | None:
    """The object of a job as DescribeJobs shows it (adopted jobs: their submitter kept no request);
    None for a record without one, however odd the record."""
    container = (record or {}).get("container")
    return object_uri(container.get("command")) if isinstance(container, Mapping) else None


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → (bucket, key); the key may be empty. ValueError when it is no s3:// URL."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// URL")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket")
    return bucket, key


# How the bootstrap says that it, not the task, failed. A task that itself exits with one of these is
# reported as EXIT_TASK_USED_RESERVED_CODE, so these codes always mean the task never started.
EXIT_USAGE = 64
EXIT_OBJECT_MISSING = 65
EXIT_ACCESS_DENIED = 66
EXIT_FETCH_FAILED = 67
EXIT_NOT_DELIVERED = 68
EXIT_TASK_USED_RESERVED_CODE = 1
BOOTSTRAP_FAILURES: Mapping[int, str] = {
    EXIT_OBJECT_MISSING: "its workload object was already consumed or removed",
    EXIT_ACCESS_DENIED: "its job role may not read or delete its workload object in S3",
    EXIT_FETCH_FAILED: "it could not fetch its workload object from S3",
    EXIT_USAGE: "its bootstrap command was malformed",
    EXIT_NOT_DELIVERED: "no scheduler delivered its workload before its wait ran out",
}
DELIVERY_WAIT_SECONDS = 600.0
"""How long an array child waits for its workload once its container runs: a scheduler delivers it a
status hop after the start (an event, or a poll); a restarted one after adopting the array."""
DELIVERY_WAIT_VARIABLE = "AIRFLOW_BATCH_EXECUTOR_DELIVERY_WAIT_SECONDS"
"""Set in an array job's environment to wait another number of seconds than the default."""


# Tag keys: how a job says which Airflow workload it runs (read back by adoption, the orphan sweep and
# the CLI).
TAG_DAG_ID = "airflow.dag_id"
TAG_TASK_ID = "airflow.task_id"
TAG_RUN_ID = "airflow.run_id"
TAG_TRY_NUMBER = "airflow.try_number"
TAG_MAP_INDEX = "airflow.map_index"
TAG_CALLBACK_ID = "airflow.callback_id"
TAG_CONNECTION_ID = "airflow.connection_id"
TAG_CONNECTION_TEST_ID = "airflow.connection_test_id"
TAG_TEAM = "airflow.team"
TAG_SUBMISSION = "airflow.submission"
"""A random id per queueing of a workload: tells the job of this queueing from a namesake (the job of
an earlier queueing of the same try, which the scheduler revoked and queued again)."""


_ROLE_ARN_HEAD = r"arn:aws[a-z-]*:iam::\d{12}:role/"
_ROLE_PATH_AND_NAME = r"[\w+=,.@/-]"
ROLE_ARN = re.compile(rf"^{_ROLE_ARN_HEAD}{_ROLE_PATH_AND_NAME}+$")
"""An IAM role ARN (any partition, path allowed): what a job or execution role must be."""
ROLE_ARN_PREFIX = re.compile(rf"^{_ROLE_ARN_HEAD}{_ROLE_PATH_AND_NAME}*\*$")
"""The same rule for an allow-list entry that names every role whose ARN starts with it."""


def is_role_arn(value: object) -> bool:
    return isinstance(value, str) and ROLE_ARN.match(value) is not None


def is_role_arn_or_prefix(value: str) -> bool:
    return is_role_arn(value) or ROLE_ARN_PREFIX.match(value) is not None
