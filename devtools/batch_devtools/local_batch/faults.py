"""Fault injection for the local Batch, switchable at runtime from tests (thread-safe).

Faults exist so that the executor's handling of the unhappy paths of AWS Batch (image pull
failures, capacity starvation, lost hosts, API throttling, slow APIs) can be exercised without
an AWS account. Job faults are matched against the job name with a shell-style glob
(``fnmatch``), and each rule is consumed by the jobs it hits: ``count=2`` hits the first two
matching jobs that reach the relevant phase, ``count=None`` hits every matching job until
:meth:`Faults.clear` is called.
"""

from __future__ import annotations

import fnmatch
import threading
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


@dataclass
class JobFault:
    """One rule that hits jobs whose name matches ``pattern``; ``remaining=None`` never runs out."""

    pattern: str
    remaining: int | None
    reason: str | None = None
    permanent: bool = False
    after_seconds: float = 0.0

    def matches(self, job_name: str) -> bool:
        return fnmatch.fnmatchcase(job_name, self.pattern)


@dataclass
class ThrottleRule:
    """Answer the next ``remaining`` calls of ``operation`` (any operation when None) with an error."""

    operation: str | None
    remaining: int | None
    error_code: str = THROTTLE_ERROR_CODE
    status_code: int = 429

    def matches(self, operation: str) -> bool:
        return self.operation is None or self.operation.lower() == operation.lower()


@dataclass
class EventFault:
    """One rule for the state-change events of jobs matching ``pattern`` (and ``status``, if set)."""

    pattern: str
    remaining: int | None
    status: str | None = None
    seconds: float = 0.0
    copies: int = 2

    def matches(self, job_name: str, status: str) -> bool:
        return fnmatch.fnmatchcase(job_name, self.pattern) and self.status in (None, status)


EVENT_FAULTS = ("drop_events", "duplicate_events", "delay_events", "reorder_events")


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
        self._throttles: list[ThrottleRule] = []
        self._latency: dict[str | None, float] = {}
        self._events: dict[str, list[EventFault]] = {kind: [] for kind in EVENT_FAULTS}

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

    def throttle(
        self,
        count: int | None = 1,
        operation: str | None = None,
        error_code: str = THROTTLE_ERROR_CODE,
        status_code: int = 429,
    ) -> None:
        """Answer the next ``count`` API calls (of ``operation``, e.g. "SubmitJob") with an HTTP error."""
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
        self, pattern: str = "*", count: int | None = 1, status: str | None = None, seconds: float = 1.0
    ) -> None:
        """Publish the matching events ``seconds`` late (later events of the job may overtake them)."""
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        fault = EventFault(pattern, _validated_count(count), status, seconds=seconds)
        self._add_event_fault("delay_events", fault)

    def reorder_events(self, pattern: str = "*", count: int | None = 1, status: str | None = None) -> None:
        """Hold each matching event back until the job's next event has been published."""
        self._add_event_fault("reorder_events", EventFault(pattern, _validated_count(count), status))

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
        """Remove every fault, so the next test starts from a healthy Batch."""
        with self._lock:
            for rules in self._events.values():
                rules.clear()
            self._fail_before_start.clear()
            self._stuck_in_runnable.clear()
            self._host_terminated.clear()
            self._throttles.clear()
            self._latency.clear()

    def apply(self, payload: dict[str, Any]) -> None:
        """Add one fault described as JSON: ``{"fault": <method name>, **kwargs}``.

        This is what the HTTP control endpoint calls, so a test in another process can use the
        same vocabulary as the Python API.
        """
        handlers: dict[str, Callable[..., None]] = {
            "fail_before_start": self.fail_before_start,
            "stuck_in_runnable": self.stuck_in_runnable,
            "host_terminated": self.host_terminated,
            "throttle": self.throttle,
            "latency": self.latency,
            "drop_events": self.drop_events,
            "duplicate_events": self.duplicate_events,
            "delay_events": self.delay_events,
            "reorder_events": self.reorder_events,
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
                "throttle": [asdict(rule) for rule in self._throttles],
                "latency": {key or "*": value for key, value in self._latency.items()},
                **{kind: [asdict(rule) for rule in rules] for kind, rules in self._events.items()},
            }

    def _claim(self, rules: list[JobFault], job_name: str) -> JobFault | None:
        with self._lock:
            for index, rule in enumerate(rules):
                if rule.matches(job_name):
                    return _consume(rules, index)
        return None
