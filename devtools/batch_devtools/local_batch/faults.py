"""Fault injection for the local Batch, switchable at runtime from tests (thread-safe).

Faults exist so that the executor's handling of the unhappy paths of AWS Batch (image pull
failures, capacity starvation, lost hosts, API throttling, slow APIs) can be exercised without
an AWS account. Job faults are matched against the job name with a shell-style glob
(``fnmatch``), and each rule is consumed by the jobs it hits: ``count=2`` hits the first two
matching jobs that reach the relevant phase, ``count=None`` hits every matching job until
:meth:`Faults.clear` is called. A child of an array job is matched as ``<job name>:<index>`` too (see
:func:`job_subject`), so a fault can hit one child of an array and leave its siblings alone.

A blocked job queue (:meth:`Faults.block_queue`) is no rule that runs out: it holds every RUNNABLE job of
the queue until it is unblocked or the faults are cleared (``queues.py`` connects it to the jobs).
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

CAPACITY_REASON = (
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested "
    "for instance type [FARGATE]"
)
MISCONFIGURATION_REASON = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) "
    "is higher than that can be met by the CE(s) attached to the job queue."
)
HOST_TERMINATED_REASON = "Host EC2 (instance i-0123456789abcdef0) terminated."
THROTTLE_ERROR_CODE = "TooManyRequestsException"
S3_THROTTLE_ERROR_CODE = "SlowDown"
STATUS_OF_ERROR = {
    THROTTLE_ERROR_CODE: 429,
    S3_THROTTLE_ERROR_CODE: 503,
    "ServiceUnavailable": 503,
    "InternalError": 500,
    "InternalFailure": 500,
    "ServerException": 500,
    "AccessDenied": 403,
    "NoSuchKey": 404,
    "NoSuchBucket": 404,
}
"""HTTP status of an error code when ``throttle`` is given a code but no status."""
MALFORMED_KINDS = (
    "not_json",
    "detail_not_object",
    "status_list",
    "status_unknown",
    "job_id_missing",
    "job_id_number",
    "other_detail_type",
    "attempts_not_list",
)
"""The ways ``malformed_events`` spoils a status message (see ``events.malformed_body``)."""


def transient_pull_error(image: str) -> str:
    """The reason AWS reports when a registry is unreachable; retrying the job usually works."""
    return (
        f"CannotPullContainerError: failed to resolve ref {image}: failed to do request: "
        f'Head "https://registry.local/v2/manifests/latest": dial tcp: i/o timeout'
    )


def permanent_pull_error(image: str) -> str:
    """The reason AWS reports when the image does not exist; retrying the job cannot help."""
    return (
        f"CannotPullContainerError: pull image manifest has been retried 1 time(s): "
        f"failed to resolve ref {image}: {image}: not found"
    )


def job_subject(job_name: str, array_index: int | None = None) -> str:
    """What job faults match a job against: its name, or ``<job name>:<index>`` for an array's child."""
    return job_name if array_index is None else f"{job_name}:{array_index}"


def subject_matches(subject: str, pattern: str) -> bool:
    """Whether ``pattern`` hits the job ``subject`` names.

    A child (``name:2``) is hit by its own subject (``name:2``, ``name:*``) and by its job name (``name``),
    as every child is a job of that name; a job name never holds a ``:`` (AWS allows letters, digits,
    ``-`` and ``_``), so the suffix cannot be mistaken for part of a name.
    """
    if fnmatch.fnmatchcase(subject, pattern):
        return True
    job_name, _, index = subject.partition(":")
    return bool(index) and fnmatch.fnmatchcase(job_name, pattern)


@dataclass
class JobFault:
    """One rule that hits jobs whose name matches ``pattern``; ``remaining=None`` never runs out."""

    pattern: str
    remaining: int | None
    reason: str | None = None
    permanent: bool = False
    after_seconds: float = 0.0
    exit_code: int = 1

    def matches(self, subject: str) -> bool:
        return subject_matches(subject, self.pattern)


@dataclass
class ThrottleRule:
    """Answer the next ``remaining`` calls of ``operation`` (any operation when None) with an error.

    Without ``error_code`` the call gets its service's own throttling error: ``SlowDown`` (503) for
    S3, ``TooManyRequestsException`` (429) for the others.
    """

    operation: str | None
    remaining: int | None
    error_code: str | None = None
    status_code: int | None = None

    def matches(self, operation: str) -> bool:
        return self.operation is None or self.operation.lower() == operation.lower()

    def answer(self, s3: bool) -> tuple[str, int]:
        """The error code and HTTP status to answer with, for an S3 call or another one."""
        code = self.error_code or (S3_THROTTLE_ERROR_CODE if s3 else THROTTLE_ERROR_CODE)
        return code, self.status_code or STATUS_OF_ERROR.get(code, 429)


@dataclass
class MalformedEvents:
    """Publish ``remaining`` messages that are not valid job state-change events, of ``kind``
    (cycling through every kind when None)."""

    remaining: int
    kind: str | None = None


@dataclass
class EventFault:
    """One rule for the state-change events of jobs matching ``pattern`` (and ``status``, if set)."""

    pattern: str
    remaining: int | None
    status: str | None = None
    seconds: float = 0.0
    copies: int = 2
    after_status: str | None = None

    def matches(self, subject: str, status: str) -> bool:
        return subject_matches(subject, self.pattern) and self.status in (None, status)


EVENT_FAULTS = ("drop_events", "duplicate_events", "delay_events", "reorder_events")


@dataclass(frozen=True)
class QueueBlock:
    """Why a blocked job queue holds its RUNNABLE jobs, and since when (epoch seconds): a held job
    read late learns from ``since`` whether it reached RUNNABLE before the block or after."""

    reason: str
    since: float


def queue_name(job_queue: str) -> str:
    """The name of a job queue given by name or by ARN (``arn:aws:<…>:job-queue/<name>``)."""
    return job_queue.rsplit(":job-queue/", 1)[-1]


def _validated_count(count: int | None) -> int | None:
    if count is not None and count < 1:
        raise ValueError(f"count must be a positive integer or None (unlimited), got {count!r}")
    return count


def _consume(rules: list[Any], index: int) -> Any:
    rule = rules[index]
    if rule.remaining is not None:
        rule.remaining -= 1
        if rule.remaining == 0:
            del rules[index]
    return rule


class Faults:
    """The fault switchboard shared by the HTTP middleware and every local job."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fail_before_start: list[JobFault] = []
        self._stuck_in_runnable: list[JobFault] = []
        self._host_terminated: list[JobFault] = []
        self._retry_after_start: list[JobFault] = []
        self._fail_after_start: list[JobFault] = []
        self._vanish: list[JobFault] = []
        self._malformed: list[MalformedEvents] = []
        self._malformed_sent = 0
        self._throttles: list[ThrottleRule] = []
        self._latency: dict[str | None, float] = {}
        self._events: dict[str, list[EventFault]] = {kind: [] for kind in EVENT_FAULTS}
        self._blocked_queues: dict[str, QueueBlock] = {}
        self._resolve_queue: Callable[[str], str] = queue_name
        self._queue_changed: Callable[[str], None] = lambda name: None

    def connect_queues(self, resolve: Callable[[str], str], changed: Callable[[str], None]) -> None:
        """Let the server name job queues and move their jobs when a block changes.

        ``resolve`` turns a queue's name or ARN into its name, raising ValueError for a queue that does
        not exist (a misspelt queue would otherwise block nothing); ``changed(name)`` catches the jobs
        of that queue up with its block as it stands, so a job already waiting shows a new block at
        once. Without the server, queues are taken by name as given and nothing is caught up.
        """
        self._resolve_queue = resolve
        self._queue_changed = changed

    def fail_before_start(
        self, pattern: str = "*", count: int | None = 1, permanent: bool = False, reason: str | None = None
    ) -> None:
        """Make matching jobs fail in STARTING without running, like an image pull failure.

        ``permanent`` picks the "not found" reason instead of the transient i/o timeout one;
        ``reason`` overrides both (it becomes ``container.reason``).
        """
        rule = JobFault(pattern, _validated_count(count), reason=reason, permanent=permanent)
        with self._lock:
            self._fail_before_start.append(rule)

    def stuck_in_runnable(
        self, pattern: str = "*", count: int | None = 1, reason: str = CAPACITY_REASON
    ) -> None:
        """Keep matching jobs in RUNNABLE with ``reason`` as statusReason until they are terminated."""
        with self._lock:
            self._stuck_in_runnable.append(JobFault(pattern, _validated_count(count), reason=reason))

    def host_terminated(self, pattern: str = "*", count: int | None = 1, after_seconds: float = 0.2) -> None:
        """Kill matching jobs ``after_seconds`` after they reach RUNNING, as if the host vanished."""
        if after_seconds < 0:
            raise ValueError(f"after_seconds must be >= 0, got {after_seconds!r}")
        rule = JobFault(
            pattern, _validated_count(count), reason=HOST_TERMINATED_REASON, after_seconds=after_seconds
        )
        with self._lock:
            self._host_terminated.append(rule)

    def retry_after_start(self, pattern: str = "*", count: int | None = 1) -> None:
        """Give matching jobs one extra attempt after their first attempt's container ran and ended.

        Whatever the container did (even exit 0), the first attempt is recorded as failed with
        ``HOST_TERMINATED_REASON``, as if the host was lost at the very end, and Batch runs the job
        again regardless of its retryStrategy. Process and inline mode; hold mode refuses it.
        """
        with self._lock:
            self._retry_after_start.append(JobFault(pattern, _validated_count(count)))

    def fail_after_start(self, pattern: str = "*", count: int | None = 1, exit_code: int = 1) -> None:
        """Make matching jobs' containers exit with ``exit_code`` once they have run (FAILED)."""
        if not 1 <= exit_code <= 255:
            raise ValueError(f"exit_code must be between 1 and 255, got {exit_code!r}")
        rule = JobFault(pattern, _validated_count(count), exit_code=exit_code)
        with self._lock:
            self._fail_after_start.append(rule)

    def vanish(self, pattern: str = "*", count: int | None = 1) -> None:
        """Make matching jobs disappear from DescribeJobs and ListJobs once they are final,
        as AWS forgets old finished jobs."""
        with self._lock:
            self._vanish.append(JobFault(pattern, _validated_count(count)))

    def malformed_events(self, count: int = 1, kind: str | None = None) -> None:
        """Publish ``count`` messages to the status queue that are not valid "Batch Job State
        Change" events, one per wake-up of the event publisher, between the real ones.

        ``kind`` is one of ``MALFORMED_KINDS``; None cycles through all of them.
        """
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive integer (messages to publish), got {count!r}")
        if kind is not None and kind not in MALFORMED_KINDS:
            raise ValueError(f"kind must be one of {', '.join(MALFORMED_KINDS)} or None, got {kind!r}")
        with self._lock:
            self._malformed.append(MalformedEvents(count, kind))

    def claim_malformed_event(self) -> str | None:
        """The kind of the next malformed message to publish, or None when none is due."""
        with self._lock:
            if not self._malformed:
                return None
            rule = _consume(self._malformed, 0)
            if rule.kind is not None:
                return rule.kind
            kind = MALFORMED_KINDS[self._malformed_sent % len(MALFORMED_KINDS)]
            self._malformed_sent += 1
            return kind

    def throttle(
        self,
        count: int | None = 1,
        operation: str | None = None,
        error_code: str | None = None,
        status_code: int | None = None,
    ) -> None:
        """Answer the next ``count`` API calls (of ``operation``, e.g. "SubmitJob") with an HTTP error.

        S3 calls get S3's XML error (``SlowDown``/503 unless told otherwise), SQS and the other
        JSON or query APIs their own shape, so botocore classifies each as it would from AWS.
        """
        rule = ThrottleRule(operation, _validated_count(count), error_code, status_code)
        with self._lock:
            self._throttles.append(rule)

    def latency(self, seconds: float, operation: str | None = None) -> None:
        """Delay every call (of ``operation``) by ``seconds`` before moto sees it; 0 removes it."""
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        key = operation.lower() if operation else None
        with self._lock:
            if seconds:
                self._latency[key] = seconds
            else:
                self._latency.pop(key, None)

    def drop_events(self, pattern: str = "*", count: int | None = 1, status: str | None = None) -> None:
        """Never publish the matching state-change events, as if EventBridge lost them."""
        self._add_event_fault("drop_events", EventFault(pattern, _validated_count(count), status))

    def duplicate_events(
        self, pattern: str = "*", count: int | None = 1, status: str | None = None, copies: int = 2
    ) -> None:
        """Publish each matching event ``copies`` times (delivery is at least once)."""
        if copies < 2:
            raise ValueError(f"copies must be >= 2, got {copies!r}")
        fault = EventFault(pattern, _validated_count(count), status, copies=copies)
        self._add_event_fault("duplicate_events", fault)

    def delay_events(
        self,
        pattern: str = "*",
        count: int | None = 1,
        status: str | None = None,
        seconds: float = 1.0,
        after_status: str | None = None,
    ) -> None:
        """Publish the matching events ``seconds`` late (later events of the job may overtake them).

        With ``after_status``, publish them right after the job's event of that status instead (never,
        if the job does not get there): an event surely overtaken, however busy the machine is.
        """
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        fault = EventFault(
            pattern, _validated_count(count), status, seconds=seconds, after_status=after_status
        )
        self._add_event_fault("delay_events", fault)

    def reorder_events(self, pattern: str = "*", count: int | None = 1, status: str | None = None) -> None:
        """Hold each matching event back until the job's next event has been published."""
        self._add_event_fault("reorder_events", EventFault(pattern, _validated_count(count), status))

    def block_queue(self, job_queue: str, reason: str) -> None:
        """Block a job queue (name or ARN), as AWS Batch does when the job at its front cannot run.

        Every job of the queue that is or gets RUNNABLE stays RUNNABLE with ``reason`` as statusReason,
        and publishes a "Batch Job Queue Blocked" event, until :meth:`unblock_queue` (or
        :meth:`clear`); blocking it again with another reason shows (and publishes) the new one.
        """
        if not isinstance(reason, str) or not reason:
            raise ValueError(f"reason must be a non-empty string, got {reason!r}")
        self._set_block(self._resolve_queue(job_queue), reason)

    def unblock_queue(self, job_queue: str) -> None:
        """Let the jobs of a blocked queue (name or ARN) go on, their statusReason cleared."""
        self._set_block(self._resolve_queue(job_queue), None)

    def queue_block(self, name: str) -> QueueBlock | None:
        """The block of the job queue of this name, None when it is not blocked."""
        with self._lock:
            return self._blocked_queues.get(name)

    def _set_block(self, name: str, reason: str | None) -> None:
        """Block (``reason``) or unblock a queue, catching its jobs up just before and just after.

        Before: a held job that reached RUNNABLE under the old block without being read since is held
        from then on, not from now. Both outside the lock, since catching a job up reads the blocks.
        """
        self._queue_changed(name)
        with self._lock:
            current = self._blocked_queues.get(name)
            if reason is None:
                self._blocked_queues.pop(name, None)
            else:
                since = current.since if current is not None else time.time()
                self._blocked_queues[name] = QueueBlock(reason, since)
        self._queue_changed(name)

    def _add_event_fault(self, kind: str, fault: EventFault) -> None:
        with self._lock:
            self._events[kind].append(fault)

    def claim_event_fault(self, kind: str, job_name: str, status: str) -> EventFault | None:
        """The first rule of ``kind`` hitting this job's event, consumed; None when none does."""
        with self._lock:
            rules = self._events[kind]
            for index, rule in enumerate(rules):
                if rule.matches(job_name, status):
                    return _consume(rules, index)
        return None

    def clear(self) -> None:
        """Remove every fault and unblock every queue, so the next test starts from a healthy Batch."""
        with self._lock:
            blocked = list(self._blocked_queues)
            for rules in self._events.values():
                rules.clear()
            self._fail_before_start.clear()
            self._stuck_in_runnable.clear()
            self._host_terminated.clear()
            self._retry_after_start.clear()
            self._fail_after_start.clear()
            self._vanish.clear()
            self._malformed.clear()
            self._throttles.clear()
            self._latency.clear()
        for name in blocked:
            self._set_block(name, None)

    def apply(self, payload: dict[str, Any]) -> None:
        """Add one fault described as JSON: ``{"fault": <method name>, **kwargs}``.

        This is what the HTTP control endpoint calls, so a test in another process can use the
        same vocabulary as the Python API.
        """
        handlers: dict[str, Callable[..., None]] = {
            "fail_before_start": self.fail_before_start,
            "stuck_in_runnable": self.stuck_in_runnable,
            "host_terminated": self.host_terminated,
            "retry_after_start": self.retry_after_start,
            "fail_after_start": self.fail_after_start,
            "vanish": self.vanish,
            "malformed_events": self.malformed_events,
            "throttle": self.throttle,
            "latency": self.latency,
            "drop_events": self.drop_events,
            "duplicate_events": self.duplicate_events,
            "delay_events": self.delay_events,
            "reorder_events": self.reorder_events,
            "block_queue": self.block_queue,
            "unblock_queue": self.unblock_queue,
        }
        kwargs = dict(payload)
        kind = kwargs.pop("fault", None)
        if kind not in handlers:
            raise ValueError(f"'fault' must be one of {sorted(handlers)}, got {kind!r}")
        try:
            handlers[kind](**kwargs)
        except TypeError as err:
            raise ValueError(f"bad arguments for fault {kind!r}: {err}") from err

    def claim_fail_before_start(self, job_name: str) -> JobFault | None:
        return self._claim(self._fail_before_start, job_name)

    def claim_stuck_in_runnable(self, job_name: str) -> JobFault | None:
        return self._claim(self._stuck_in_runnable, job_name)

    def claim_host_terminated(self, job_name: str) -> JobFault | None:
        return self._claim(self._host_terminated, job_name)

    def claim_retry_after_start(self, job_name: str) -> JobFault | None:
        return self._claim(self._retry_after_start, job_name)

    def retry_after_start_matches(self, job_name: str) -> bool:
        """Whether a ``retry_after_start`` rule would hit this job (without consuming it)."""
        with self._lock:
            return any(rule.matches(job_name) for rule in self._retry_after_start)

    def claim_fail_after_start(self, job_name: str) -> JobFault | None:
        return self._claim(self._fail_after_start, job_name)

    def claim_vanish(self, job_name: str) -> JobFault | None:
        return self._claim(self._vanish, job_name)

    def claim_throttle(self, operation: str) -> ThrottleRule | None:
        with self._lock:
            for index, rule in enumerate(self._throttles):
                if rule.matches(operation):
                    return _consume(self._throttles, index)
        return None

    def latency_for(self, operation: str) -> float:
        with self._lock:
            return self._latency.get(operation.lower(), self._latency.get(None, 0.0))

    def to_dict(self) -> dict[str, Any]:
        """The active faults, in the shape the HTTP control endpoint returns."""
        with self._lock:
            return {
                "fail_before_start": [asdict(rule) for rule in self._fail_before_start],
                "stuck_in_runnable": [asdict(rule) for rule in self._stuck_in_runnable],
                "host_terminated": [asdict(rule) for rule in self._host_terminated],
                "retry_after_start": [asdict(rule) for rule in self._retry_after_start],
                "fail_after_start": [asdict(rule) for rule in self._fail_after_start],
                "vanish": [asdict(rule) for rule in self._vanish],
                "malformed_events": [asdict(rule) for rule in self._malformed],
                "throttle": [asdict(rule) for rule in self._throttles],
                "latency": {key or "*": value for key, value in self._latency.items()},
                **{kind: [asdict(rule) for rule in rules] for kind, rules in self._events.items()},
                "blocked_queues": {name: block.reason for name, block in self._blocked_queues.items()},
            }

    def _claim(self, rules: list[JobFault], job_name: str) -> JobFault | None:
        with self._lock:
            for index, rule in enumerate(rules):
                if rule.matches(job_name):
                    return _consume(rules, index)
        return None
