"""The records that cross modules and threads, in one place, each with its owner.

A record is either frozen, or says beside each mutable field which thread writes it. Three kinds of
thread touch them: the scheduler's (the executor's heartbeat, ``sync`` and adoption), the submit
threads (one attempt of one submission at a time) and the object workers (S3 writes, refreshes and
removals). Nothing here does I/O or imports a module that does.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_batch_executor.aws.errors import ApiErrorKind
from airflow_batch_executor.job_contract import TAG_SUBMISSION, request_object_uri, split_s3_uri
from airflow_batch_executor.requests.queue_ladder import QueueChoice

if TYPE_CHECKING:
    from airflow_batch_executor.requests.naming import WorkloadIdentity
    from airflow_batch_executor.requests.task_specs import JobSpec

WorkloadKey = Hashable
"""What the scheduler calls a workload: a ``TaskInstanceKey``, or a callback's or connection test's key."""

Progress = tuple[int, int]
"""How far a job has come: (attempts made, rank of its status); compared as a tuple."""


class TaskState(enum.StrEnum):
    """What the scheduler hears of a workload."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


@dataclass(frozen=True)
class TaskEvent:
    """What the scheduler must hear about one workload.

    ``state`` RUNNING carries the job id in ``info``, SUCCESS the job id, FAILED the reason; None is
    an event-log row alone. ``log_event`` names the row of the task's event log that carries ``info``
    to the operator.
    """

    key: WorkloadKey
    state: TaskState | None
    info: str
    log_event: str = ""


@dataclass(eq=False)
class WorkloadObject:
    """One workload object in S3 and what the executor knows of it.

    Owners: ``etag``, ``token_window``, ``consumed`` and ``retry_at`` are read and written only while
    holding ``lock``, by a submit thread writing the object before SubmitJob or an object worker
    refreshing it. ``removed``, ``refresh_queued`` and ``adopted`` are set by the scheduler's thread
    without the lock (it must never wait for an S3 call); a writer checks ``removed`` before writing
    and again after, deleting what it wrote if the object was given up meanwhile.
    """

    uri: str
    etag: str | None = None
    """ETag of the executor's last write; None when it wrote none (yet, or since removing it), or
    the object was written by another scheduler (adopted) and not read yet."""
    token_window: tuple[float, float] | None = None
    """(issued, expires) of the token last written; None when unknown or not signed here."""
    consumed: bool = False
    """A conditional write found the object changed or gone: a job read it. Never written again."""
    removed: bool = False
    """The job is over or unwanted: the object is (being) removed and never written again."""
    refresh_queued: bool = False
    retry_at: float = 0.0
    """After a failed refresh: not before this wall-clock time."""
    adopted: bool = False
    """Written by another scheduler: its ETag and token are learnt by reading it once."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def bucket_key(self) -> tuple[str, str]:
        return split_s3_uri(self.uri)

    def refresh_due(self, now: float) -> bool:
        """True when its token has less than half of its lifetime left, or (adopted) is unknown yet."""
        if self.removed or self.consumed or self.refresh_queued or now < self.retry_at:
            return False
        if self.token_window is None:
            return self.adopted and self.etag is None
        return self.half_gone(now)

    def half_gone(self, now: float) -> bool:
        """Whether less than half of the written token's lifetime is left."""
        if self.token_window is None:
            return False
        issued, expires = self.token_window
        return now >= issued + (expires - issued) / 2


@dataclass(slots=True, eq=False)
class Submission:
    """One workload's way to a Batch job, across its attempts; compared and hashed by identity.

    ``key``, ``request`` and ``spec`` never change. A submission is never in two attempts at once, and
    the results queue orders each attempt before the scheduler's thread reads its result.
    """

    key: WorkloadKey
    request: dict[str, Any]
    spec: JobSpec | None = None
    attempt: int = 0
    """Attempts made; written by the submit thread making one."""
    maybe_submitted: bool = False
    """An attempt's answer was lost, so a job may exist; written by the submit thread."""
    look_up_only: bool = False
    """Written by the scheduler's thread between attempts: the next one only looks for the job a lost
    answer may have made, and never submits."""
    look_ups: int = 0
    """Look-up-only attempts made; written by the submit thread making one."""
    fallback: QueueChoice | None = None
    """Where the ``queue_fallbacks`` ladder sent the last attempt, and why, when not to the request's
    own queue; written by the submit thread making the attempt."""
    reclaims: dict[str, int] = field(default_factory=dict)
    """Jobs of this try that Spot reclaimed before they started, per queue; written by the scheduler's
    thread before it queues the next attempt."""
    workload: WorkloadObject | None = field(init=False)
    """S3 mode: the object its jobs read; guards its own fields (see :class:`WorkloadObject`)."""

    def __post_init__(self) -> None:
        uri = request_object_uri(self.request)
        self.workload = WorkloadObject(uri) if uri is not None else None

    @property
    def job_name(self) -> str:
        return self.request["jobName"]

    @property
    def job_queue(self) -> str:
        """The queue its job goes to (or went to): the ladder's choice, else the request's."""
        return self.fallback.queue if self.fallback is not None else self.request["jobQueue"]

    @property
    def submission_id(self) -> str | None:
        """This queueing's id, as its jobs are tagged (see ``job_contract.TAG_SUBMISSION``)."""
        return (self.request.get("tags") or {}).get(TAG_SUBMISSION)


@dataclass(frozen=True)
class SubmitResult:
    """What one attempt of a submission came back with: a job id, or the error that stopped it."""

    submission: Submission
    job_id: str | None = None
    error_kind: ApiErrorKind | None = None
    error: str = ""
    found_existing: bool = False
    array_directory: str | None = None
    """The delivery directory of the array whose child ``job_id`` is (see ``requests.array_request``)."""


@dataclass(slots=True)
class TrackedJob:
    """A Batch job of a workload while it is live. Every field is the scheduler's thread's alone."""

    job_id: str
    key: WorkloadKey
    job_name: str
    job_queue: str
    attempt: int
    submitted_at: float
    submission: Submission | None = None
    """Kept only until the task may have started (a plain job's container started, an array child's
    workload delivered): it is needed only to resubmit the job."""
    status: str = "SUBMITTED"
    status_reason: str | None = None
    missing_checks: int = 0
    started: bool = False
    workload: WorkloadObject | None = None
    """S3 mode: the object the job reads its workload from."""
    heard_at: float = 0.0
    """When Batch last told us of this job (an event or a record); 0: never."""
    progress: Progress | None = None
    """The furthest state applied; None until Batch told us any."""
    noted_reason: str | None = None
    """The last waiting reason written to the task's event log (see ``rules.waiting``)."""
    directory: str | None = None
    """An array child's delivery directory: its workload, marker and its array's manifest are there."""
    delivering: bool = False
    """An array child's workload is being delivered in the background (or this scheduler, which adopted
    it before it started, has none to deliver)."""
    delivered_to: str | None = None
    """The ECS task an array child's workload was delivered to (see ``rules.delivery``)."""


@dataclass(frozen=True)
class FoundJob:
    """The job of a task instance try, with the name and queue the task's job is submitted under."""

    job_id: str
    job_name: str
    job_queue: str


@dataclass(frozen=True)
class Orphan:
    """A task instance offered for adoption, as plain values read on the scheduler's thread.

    ``job_queue``/``job_name`` are None when its request cannot be built: then it was never submitted
    and only the job id Airflow stored can point at a job.
    """

    key: WorkloadKey
    external_id: str | None
    job_queue: str | None
    job_name: str | None
    fallback_queues: tuple[str, ...] = ()
    """The queues below ``job_queue`` on the ``queue_fallbacks`` ladder, where its job may be too."""
    array_identity: WorkloadIdentity | None = None
    """A mapped instance that may have gone as an array's child (``array_jobs``): with no job by id or
    name, its child is looked for by its try's array name and the array's manifest."""
    name_prefix: str | None = None
    """``[aws_batch_executor] job_name``, which every job and array name starts with."""

    @property
    def queues(self) -> tuple[str, ...]:
        """Every queue its job may be in, ``job_queue`` first."""
        return (self.job_queue, *self.fallback_queues) if self.job_queue else ()


@dataclass(frozen=True)
class Lookup:
    """What the adoption search found for one orphan: its job, or None when it provably has none."""

    orphan: Orphan
    job: FoundJob | None
