"""Job names and tags: how a Batch job says which Airflow workload it runs.

The name is deterministic for a task instance try. That is what lets a restarted scheduler find a job
whose id never reached the database (``ListJobs`` with a ``JOB_NAME`` filter) instead of running the
try twice, so it must stay a pure function of the identity.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from airflow_batch_executor.job_contract import (
    MAX_JOB_NAME_CHARS,
    MAX_TAG_VALUE_CHARS,
    TAG_CALLBACK_ID,
    TAG_CONNECTION_ID,
    TAG_CONNECTION_TEST_ID,
    TAG_DAG_ID,
    TAG_MAP_INDEX,
    TAG_RUN_ID,
    TAG_TASK_ID,
    TAG_TEAM,
    TAG_TRY_NUMBER,
)

MAX_PREFIX = 40
HASH_LENGTH = 10

_NAME_DISALLOWED = re.compile(r"[^A-Za-z0-9_-]")
_TAG_PUNCTUATION = set("_.:/=+-@")


@dataclass(frozen=True)
class WorkloadIdentity:
    """The Airflow identity a job runs for: a task instance try, an executor callback, or a
    connection test (which belongs to no DAG)."""

    dag_id: str
    task_id: str = ""
    run_id: str = ""
    map_index: int = -1
    try_number: int = 0
    callback_id: str = ""
    connection_id: str = ""
    connection_test_id: str = ""

    @property
    def is_callback(self) -> bool:
        return bool(self.callback_id)

    @property
    def is_connection_test(self) -> bool:
        return bool(self.connection_test_id)

    def fingerprint(self) -> str:
        """Short hash of the full identity: keeps names unique when the readable part is truncated."""
        parts = (self.dag_id, self.task_id, self.run_id, str(self.map_index), str(self.try_number))
        text = "\0".join((*parts, self.callback_id, self.connection_test_id))
        return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]

    @property
    def task_try(self) -> tuple[str, str, str, int]:
        """(dag_id, task_id, run_id, try_number): the try every mapped instance of it shares."""
        return self.dag_id, self.task_id, self.run_id, self.try_number

    def try_fingerprint(self) -> str:
        """Short hash of the task try without its map index: the same for every mapped instance of it."""
        text = "\0".join(("array", *map(str, self.task_try)))
        return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def sanitize_name_part(text: str) -> str:
    """Replace what Batch job names do not allow (dots, spaces, unicode) with underscores."""
    return _NAME_DISALLOWED.sub("_", text)


def _head(readable: list[str], prefix: str | None, room: int) -> str:
    """The readable start of a name, sanitised, beginning alphanumeric, at most ``room`` characters."""
    head_parts = [sanitize_name_part(p) for p in readable]
    if prefix:
        head_parts.insert(0, sanitize_name_part(prefix)[:MAX_PREFIX])
    head = "-".join(head_parts).lstrip("_-")
    return (head or "airflow")[:room]


MAX_MAP_INDEX_DIGITS = 10
"""Room kept in an array's name for each end of its map range (Airflow keeps map indexes in a 32-bit
integer), whatever the range: the part before the range must be the same for every array of a try,
since it is what a restarted scheduler lists."""


def array_name_prefix(identity: WorkloadIdentity, prefix: str | None = None) -> str:
    """The start every array job name of this task try shares (its map range follows): what ListJobs
    is asked for (``<it>*``) to find the array that holds a mapped instance whose child id was lost."""
    search = f"-try{identity.try_number}-{identity.try_fingerprint()}-m"
    room = MAX_JOB_NAME_CHARS - len(search) - 2 * MAX_MAP_INDEX_DIGITS - 1
    return _head([identity.dag_id, identity.task_id], prefix, room) + search


def array_job_name(identity: WorkloadIdentity, first: int, last: int, prefix: str | None = None) -> str:
    """An array job's name: the task, the try and the map range its children hold (``first`` to
    ``last``, not always every index between), readable in the console, ≤128 characters."""
    return f"{array_name_prefix(identity, prefix)}{first}-{last}"


def job_name(identity: WorkloadIdentity, prefix: str | None = None) -> str:
    """The Batch job name for this workload: readable, ≤128 chars, starting alphanumeric, unique per try."""
    if identity.is_connection_test:
        tail = f"-{identity.fingerprint()}"
        readable = ["connection-test", identity.connection_id]
    elif identity.is_callback:
        tail = f"-callback-{identity.fingerprint()}"
        readable = [identity.dag_id]
    else:
        map_part = f"-{identity.map_index}" if identity.map_index >= 0 else ""
        tail = f"{map_part}-try{identity.try_number}-{identity.fingerprint()}"
        readable = [identity.dag_id, identity.task_id]
    return _head(readable, prefix, MAX_JOB_NAME_CHARS - len(tail)) + tail


def sanitize_tag_value(value: str) -> str:
    """Make a value acceptable as a Batch tag value: allowed characters only, at most 256 of them."""
    cleaned = "".join(c if c.isalnum() or c.isspace() or c in _TAG_PUNCTUATION else "_" for c in str(value))
    return cleaned[:MAX_TAG_VALUE_CHARS]


def identity_tags(identity: WorkloadIdentity) -> dict[str, str]:
    """Tags that let an operator (and ``airflow aws-batch-executor jobs``) map a job back to Airflow."""
    if identity.is_connection_test:
        raw = {
            TAG_CONNECTION_ID: identity.connection_id,
            TAG_CONNECTION_TEST_ID: identity.connection_test_id,
        }
    elif identity.is_callback:
        raw = {TAG_DAG_ID: identity.dag_id, TAG_CALLBACK_ID: identity.callback_id}
    else:
        raw = {
            TAG_DAG_ID: identity.dag_id,
            TAG_TASK_ID: identity.task_id,
            TAG_RUN_ID: identity.run_id,
            TAG_TRY_NUMBER: str(identity.try_number),
            TAG_MAP_INDEX: str(identity.map_index),
        }
    return {key: sanitize_tag_value(value) for key, value in raw.items()}


def team_tags(team: str | None) -> dict[str, str]:
    """The tag that says which team's executor submitted a job (multi-team mode); none without a team.

    It lets one team's operators, its cost reports and ``airflow aws-batch-executor jobs --team`` tell
    their jobs apart in a job queue or account that several teams share.
    """
    return {TAG_TEAM: sanitize_tag_value(team)} if team else {}
