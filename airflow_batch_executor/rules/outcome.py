"""Classify one AWS Batch ``DescribeJobs`` record into what the executor should do next.

The executor polls Batch and must turn a job record into one decision: keep waiting, report
success, fail the try, resubmit after a transient infrastructure hiccup, or terminate a job
that can never start.  The decision must be safe on partial or malformed records, because a
wrong exception here would stall every task the executor tracks.

The one rule that must never bend, stated here and only here: a job whose task may have started is
never resubmitted, since the task's code may already have had side effects. For a plain job that is
any job whose container started (in any attempt, see :func:`container_started`). An array child's
container starts before its task can: it waits for its workload, and ends with ``EXIT_NOT_DELIVERED``
when none comes, having run nothing; only that child is resubmitted, alone, as a plain job. When in
doubt the try fails and Airflow's own retry policy decides.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_batch_executor.job_contract import (
    BOOTSTRAP_FAILURES,
    EXIT_NOT_DELIVERED,
    WAITING_STATUSES,
    is_delivery_directory,
    record_object_uri,
)

__all__ = [
    "FAILURE_HINTS",
    "MISCONFIGURATION_HINTS",
    "PERMANENT_BEFORE_START_PATTERNS",
    "STARTED_SIGNAL_PATTERNS",
    "TRANSIENT_BEFORE_START_PATTERNS",
    "WAITING_STATUSES",
    "Outcome",
    "Verdict",
    "classify",
    "reclaimed_host",
]


class Verdict(enum.Enum):
    WAITING = "waiting"  # queued or being placed; nothing to do yet
    RUNNING = "running"
    SUCCESS = "success"
    FAIL = "fail"  # fail this try: task failure or an infrastructure failure retrying won't fix
    RESUBMIT = "resubmit"  # never started, for a transient reason: resubmitting may help
    TERMINATE = "terminate"  # still queued but can never start: terminate the job and fail the task


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reason: str  # one line for the operator: what happened, Batch's own words, and what to do
    reason_class: str  # short stable label for metrics and log filters


MISCONFIGURATION_PREFIX = "MISCONFIGURATION:"

# Reasons (statusReason / container reason, matched case-insensitively anywhere in the text) that
# mean the job can never succeed by simply trying again.  Checked BEFORE the transient table, so a
# record that carries both kinds of signal is failed rather than resubmitted.
PERMANENT_BEFORE_START_PATTERNS: tuple[str, ...] = (
    r"MISCONFIGURATION:",  # AWS Batch guide "Jobs stuck in RUNNABLE due to misconfiguration"
    r"\bterminated by\b",  # "Terminated by JobStateTimeLimit action due to reason: ..." (Batch guide)
    r"\bcancel+ed by\b",  # "Canceled by JobStateTimeLimit action due to reason: ..." (Batch guide)
    r"Dependent Job failed",  # Batch fails jobs whose dependency failed; resubmitting repeats it
    r"manifest unknown",  # CannotPullContainerError: ... not found: manifest unknown (ECS agent tests)
    r"\bnot found\b",  # "manifest for <image> not found", log group / secret not found
    r"does not exist",  # "repository does not exist or may require 'docker login'"
    r"pull access denied",  # CannotPullContainerError: Error response from daemon: pull access denied
    r"access ?denied",  # AccessDenied / AccessDeniedException from ECR, SSM, Secrets Manager
    r"not authorized to perform",  # "... is not authorized to perform: ecr:GetAuthorizationToken"
    r"\bunauthori[sz]ed\b",  # "failed to fetch anonymous token: ... 401 Unauthorized"
    r"\bforbidden\b",  # 403 from a registry
    r"no basic auth credentials",  # ECR pull without credentials
    r"failed to authorize",  # containerd registry auth failure
    r"authentication required",  # registry rejects anonymous pulls
    r"unable to assume (?:the )?role",  # task/execution role trust policy is wrong
    r"execution role",  # "... execution role ..." problems are configuration, not weather
    r"invalid reference format",  # malformed image name
    r"exec format error",  # image built for another CPU architecture
    r"does not contain descriptor matching platform",  # multi-arch image lacks this platform
    r"CannotCreateContainerError",  # Docker rejected the container config
    r"CannotInspectContainerError",  # raised after the container was created: it may have run
)

# Reasons that mean the job never got its container running because of something that usually
# clears up by itself.  Only consulted when the container never started and no permanent pattern
# matched.
TRANSIENT_BEFORE_START_PATTERNS: tuple[str, ...] = (
    r"ResourceInitializationError",  # ECS: ENI / secrets / log driver setup failed (Fargate)
    r"Timeout waiting for network interface provisioning to complete",  # ECS stopped reason
    r"network interface to be provisioned timed out",  # Batch wording of the same ENI timeout
    r"Timeout waiting for EphemeralStorage provisioning to complete",  # ECS stopped reason
    r"^Host EC2 \(instance [^)]*\) terminated",  # instance lost before the container started
    r"Your Spot Task was interrupted",  # Fargate Spot reclaim (ECS stoppedReason)
    r"SpotInterruption",  # ECS stopCode for a Spot reclaim
    r"CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",  # AWS Batch guide "stuck in RUNNABLE due to capacity"
    r"DockerTimeoutError",  # Docker daemon too slow to answer
    r"CannotStartContainerError:.*(?:timeout|timed out)",  # container start hit a daemon timeout
    r"i/o timeout",  # "dial tcp ...:443: i/o timeout" while pulling
    r"context deadline exceeded",  # pull or secret fetch ran out of time
    r"Client\.Timeout exceeded",  # "request canceled while waiting for connection (Client.Timeout ...)"
    r"TLS handshake timeout",  # registry TLS handshake timed out
    r"connection reset by peer",  # network blip mid-pull
    r"\b(?:500 Internal Server Error|502 Bad Gateway|503 Service Unavailable|504 Gateway Time-?out)\b",
    r"status code 429|429 Too Many Requests|too ?many ?requests",  # "toomanyrequests: ... pull rate limit"
    r"no space left on device",  # host disk filled by other jobs' images; another host has room
)

# Reasons that prove the container ran even when startedAt / exitCode are missing.
STARTED_SIGNAL_PATTERNS: tuple[str, ...] = (
    r"Essential container in task exited",  # ECS: the container ran and exited
    r"OutOfMemoryError",  # "OutOfMemoryError: Container killed due to memory usage"
    r"Job attempt duration exceeded timeout",  # timeout is measured from startedAt
)

# What an operator should do about a MISCONFIGURATION:* reason, by its code.
MISCONFIGURATION_HINTS: Mapping[str, str] = {
    "COMPUTE_ENVIRONMENT_MAX_RESOURCE": (
        "raise maxvCpus on the queue's compute environments or request fewer vCPUs for the task"
    ),
    "JOB_RESOURCE_REQUIREMENT": (
        "no instance type in the queue's compute environments fits the requested vCPU/memory/GPU; "
        "request less or allow larger instance types"
    ),
    "SERVICE_ROLE_PERMISSIONS": "fix the permissions of the compute environments' AWS Batch service role",
    "EC2_INSTANCE_CONFIGURATION_UNSUPPORTED": (
        "the compute environment's instance types or launch template are not usable in its "
        "Availability Zones; fix the compute environment"
    ),
}

# Advice appended to a failure reason, first match wins: (pattern, what the operator should do).
FAILURE_HINTS: tuple[tuple[str, str], ...] = (
    (r"OutOfMemoryError", "give the task more memory"),
    (
        r"Job attempt duration exceeded timeout",
        "raise the job timeout (attemptDurationSeconds) or make the task faster",
    ),
    (
        r"^Host EC2 \(instance [^)]*\) terminated|Spot Task was interrupted",
        "retry the task; if Spot reclaims keep interrupting it, run it on On-Demand capacity",
    ),
    (
        r"CannotInspectContainerError",
        "check the host's Docker daemon and disk, the ECS agent lost track of the container",
    ),
    (
        r"manifest unknown|\bnot found\b|does not exist",
        "check that the image, secret or log group named above exists",
    ),
    (
        r"denied|not authorized|unauthori[sz]ed|forbidden|no basic auth|failed to authorize|assume",
        "check the job's execution role and registry credentials",
    ),
    (
        r"exec format error|descriptor matching platform",
        "build the image for the compute environment's CPU architecture",
    ),
)

_FLAGS = re.IGNORECASE


def _compile(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, _FLAGS) for p in patterns)


_PERMANENT = _compile(PERMANENT_BEFORE_START_PATTERNS)
_TRANSIENT = _compile(TRANSIENT_BEFORE_START_PATTERNS)
_STARTED = _compile(STARTED_SIGNAL_PATTERNS)
_HINTS = tuple((re.compile(p, _FLAGS), advice) for p, advice in FAILURE_HINTS)
_WHITESPACE = re.compile(r"\s+")
_MISCONFIGURATION_CODE = re.compile(MISCONFIGURATION_PREFIX + r"\s*([A-Z0-9_]+)", _FLAGS)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> Sequence[Any]:
    return value if isinstance(value, (list, tuple)) else ()


def _text(value: Any) -> str:
    """One-line text of a string field; anything else (None, numbers, junk) counts as absent."""
    return _WHITESPACE.sub(" ", value).strip() if isinstance(value, str) else ""


def _unique(values: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for value in values:
        if value and value not in seen:
            seen.append(value)
    return seen


def _ecs_containers(job: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    tasks = _items(_mapping(job.get("ecsProperties")).get("taskProperties"))
    if not tasks:
        return []
    return [_mapping(c) for c in _items(_mapping(tasks[0]).get("containers"))]


def _attempts(job: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [_mapping(a) for a in _items(job.get("attempts"))]


def _exit_codes(job: Mapping[str, Any]) -> list[str]:
    """Exit codes worth showing, most relevant first: the job's container, then multi-container ones."""
    codes: list[str] = []
    container_code = _mapping(job.get("container")).get("exitCode")
    if container_code is None:
        for attempt in reversed(_attempts(job)):
            container_code = _mapping(attempt.get("container")).get("exitCode")
            if container_code is not None:
                break
    if container_code is not None:
        codes.append(f"exit code {_text(str(container_code))}")
    for container in _ecs_containers(job):
        code = container.get("exitCode")
        if code is None:
            continue
        name = _text(container.get("name"))
        shown = f"exit code {_text(str(code))}"
        codes.append(f"{shown} (container {name})" if name else shown)
    return _unique(codes)


def _display_reasons(job: Mapping[str, Any], status_reason_first: bool = False) -> list[str]:
    """Reasons an operator needs: the job's own, each container's, and the latest attempt's.

    After a start the container's own reason ("OutOfMemoryError ...") is the news; before a
    start Batch's summary ("Task failed to start") reads better first.
    """
    reasons = [_text(job.get("statusReason"))] if status_reason_first else []
    reasons.append(_text(_mapping(job.get("container")).get("reason")))
    for container in _ecs_containers(job):
        reason = _text(container.get("reason"))
        name = _text(container.get("name"))
        reasons.append(f"{name}: {reason}" if reason and name else reason)
    attempts = _attempts(job)
    if attempts:
        reasons.append(_text(_mapping(attempts[-1].get("container")).get("reason")))
        reasons.append(_text(attempts[-1].get("statusReason")))
    reasons.append(_text(job.get("statusReason")))
    return _unique(reasons)


def _all_reasons(job: Mapping[str, Any]) -> list[str]:
    """Every reason on the record, earlier attempts included, so no permanent signal is missed."""
    reasons = _display_reasons(job)
    for attempt in _attempts(job):
        reasons.append(_text(_mapping(attempt.get("container")).get("reason")))
        reasons.append(_text(attempt.get("statusReason")))
    return _unique(reasons)


def _matches(patterns: Sequence[re.Pattern[str]], reasons: Sequence[str]) -> bool:
    return any(p.search(r) for p in patterns for r in reasons)


_EC2_RECLAIM = re.compile(r"^Host EC2 \(instance ([^)]*)\) terminated", _FLAGS)
_FARGATE_RECLAIM = re.compile(r"Your Spot Task was interrupted|SpotInterruption", _FLAGS)


def reclaimed_host(job: Mapping[str, Any]) -> str | None:
    """What Spot took back from a FAILED job ("instance i-0abc…", "its Fargate Spot task"), or None.

    EC2 Spot shows in the reason as ``Host EC2 (instance i-…) terminated.``, Fargate Spot as ECS's
    ``Your Spot Task was interrupted.`` (stop code ``SpotInterruption``). The reclaims a task instance
    has had decide its queue when ``queue_fallbacks`` is set.
    """
    if not isinstance(job, Mapping) or job.get("status") != "FAILED":
        return None
    for reason in _all_reasons(job):
        if found := _EC2_RECLAIM.search(reason):
            return f"instance {found.group(1)}"
        if _FARGATE_RECLAIM.search(reason):
            return "its Fargate Spot task"
    return None


def container_started(job: Mapping[str, Any]) -> bool:
    """Whether any attempt of this job ever started its container: the one test of "started".

    Batch's top-level fields describe the latest attempt only; after a Batch-level retry the job is
    RUNNABLE again with no top-level ``startedAt``, yet its first attempt ran the task.
    """
    job = _mapping(job)
    return str(job.get("status")) == "RUNNING" or _container_started(job, _all_reasons(job))


def _container_started(job: Mapping[str, Any], reasons: Sequence[str]) -> bool:
    if job.get("startedAt") is not None:
        return True
    attempts = _attempts(job)
    if any(a.get("startedAt") is not None for a in attempts):
        return True
    containers = [
        _mapping(job.get("container")),
        *_ecs_containers(job),
        *(_mapping(a.get("container")) for a in attempts),
    ]
    if any(c.get("exitCode") is not None for c in containers):
        return True
    return _matches(_STARTED, reasons)


def _misconfiguration_hint(reasons: Sequence[str]) -> str:
    for reason in reasons:
        found = _MISCONFIGURATION_CODE.search(reason)
        if found:
            return MISCONFIGURATION_HINTS.get(
                found.group(1).upper(), "fix the job queue's compute environments or the task's resources"
            )
    return ""


def _hint(reasons: Sequence[str]) -> str:
    for pattern, advice in _HINTS:
        if any(pattern.search(r) for r in reasons):
            return advice
    return _misconfiguration_hint(reasons)


def _sentence(text: str) -> str:
    return text.rstrip(". ") + "."


def _line(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _job_label(job: Mapping[str, Any]) -> str:
    job_id = _text(job.get("jobId")) or _text(job.get("jobName"))
    return f"Batch job {job_id}" if job_id else "Batch job (no jobId)"


def classify(job: Mapping[str, Any]) -> Outcome:
    """Decide what the executor does with one Batch job record; never raises.

    Unknown statuses are reported as waiting rather than failed so that a new Batch status
    cannot fail every running task at once; the caller logs the reason and keeps polling.
    """
    job = _mapping(job)
    label = _job_label(job)
    raw_status = job.get("status")
    status = raw_status.strip().upper() if isinstance(raw_status, str) else ""
    status_reason = _text(job.get("statusReason"))

    if status == "SUCCEEDED":
        return Outcome(Verdict.SUCCESS, f"{label} SUCCEEDED", "succeeded")
    if status == "RUNNING":
        return Outcome(Verdict.RUNNING, f"{label} is RUNNING", "running")
    if status in WAITING_STATUSES:
        if status_reason.upper().startswith(MISCONFIGURATION_PREFIX):
            return Outcome(
                Verdict.TERMINATE,
                f"{label} is {status} but can never start: {_sentence(status_reason)} "
                f"Terminating it. To fix: {_misconfiguration_hint([status_reason])}.",
                "misconfiguration",
            )
        detail = f": {status_reason}" if status_reason else ""
        return Outcome(Verdict.WAITING, f"{label} is {status}{detail}", "waiting")
    if status == "FAILED":
        return _classify_failed(job, label)
    seen = repr(raw_status) if raw_status is not None else "no status"
    return Outcome(
        Verdict.WAITING,
        f"{label} reported {seen}, which this executor does not know; treating it as still waiting",
        "unknown_status",
    )


def _bootstrap_advice(job: Mapping[str, Any]) -> str:
    """Why an S3-mode job's bootstrap gave up, from its exit code; its log line names the object."""
    container = _mapping(job.get("container"))
    failure = BOOTSTRAP_FAILURES.get(container.get("exitCode"))  # type: ignore[arg-type]
    if failure is None or record_object_uri(job) is None:
        return ""
    return (
        f" The job's workload bootstrap stopped before running the task: {failure}. The job's log "
        "has one line naming the object and the fix."
    )


def _never_delivered(job: Mapping[str, Any]) -> bool:
    """An array child that ended without its workload, so without running its task (exit 68 is the
    bootstrap's own: a task's use of it is reported as 1)."""
    uri = record_object_uri(job)
    if uri is None or not is_delivery_directory(uri):
        return False
    return _mapping(job.get("container")).get("exitCode") == EXIT_NOT_DELIVERED


def _classify_failed(job: Mapping[str, Any], label: str) -> Outcome:
    all_reasons = _all_reasons(job)
    hint = _hint(all_reasons)
    advice = f" To fix: {hint}." if hint else ""

    if _never_delivered(job):
        return Outcome(
            Verdict.RESUBMIT,
            f"{label} (an array child) ended without its workload, so its task never ran: "
            f"{BOOTSTRAP_FAILURES[EXIT_NOT_DELIVERED]}. It is sent again alone, as a plain job.",
            "not_delivered",
        )

    if _container_started(job, all_reasons):
        shown = _sentence(_line(*_exit_codes(job), *_display_reasons(job)) or "Batch gave no reason")
        advice = _bootstrap_advice(job) or advice
        return Outcome(
            Verdict.FAIL,
            f"{label} FAILED after the container started: {shown}{advice}",
            "after_start",
        )
    shown = _sentence(_line(*_display_reasons(job, status_reason_first=True)) or "Batch gave no reason")
    if _matches(_PERMANENT, all_reasons):
        return Outcome(
            Verdict.FAIL,
            f"{label} FAILED before the container started, and resubmitting would not help: {shown}{advice}",
            "permanent_before_start",
        )
    if _matches(_TRANSIENT, all_reasons):
        return Outcome(
            Verdict.RESUBMIT,
            f"{label} FAILED before the container started, for a transient reason: {shown}",
            "transient_before_start",
        )
    return Outcome(
        Verdict.FAIL,
        f"{label} FAILED before the container started, for a reason this executor does not "
        f"recognise, so it is not resubmitted: {shown}",
        "permanent_before_start",
    )
