"""AWS Batch's vocabulary and limits, written once.

These are facts of the AWS Batch API (its reference and its service quotas), not choices of ours:
every module that needs one imports it from here, so a limit that changes changes in one place.
"""

from __future__ import annotations

import re

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


def batch_reason(text: str) -> str:
    """A reason TerminateJob accepts: Batch rejects longer ones instead of truncating them."""
    return text[:MAX_REASON_CHARS]


DEFINITION_NOT_ACTIVE = re.compile(r"is not in ACTIVE status|does not exist or is not in ACTIVE status")
"""How SubmitJob words its refusal of a job definition that is not (or no longer) ACTIVE:
``JobDefinition arn:... is not in ACTIVE status`` / ``JobDefinition name X does not exist or is not in
ACTIVE status`` (HTTP 400 ClientException)."""
