"""What a waiting job's reason means to an operator, and what to do about it.

A job waiting in RUNNABLE says why only in its ``statusReason``: in DescribeJobs, and in the "Batch Job
Queue Blocked" event Batch sends when the job blocks its queue (a RUNNABLE job sends no state-change
event when only its reason changes). The executor writes each new reason, with the advice below, to
the task's event log, so whoever looks at a task stuck in "queued" or "running" sees why. A
``MISCONFIGURATION:*`` reason is not only written: the job can never start, so
:func:`~airflow_batch_executor.rules.outcome.classify` has it terminated and the try failed.

The codes are those of AWS Batch's guide "Jobs stuck in a RUNNABLE status".
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from airflow_batch_executor.job_contract import WAITING_STATUSES

WAITING_EVENT = "batch job waiting"
"""The event-log row that carries a waiting job's reason."""

CAPACITY_ADVICE: Mapping[str, str] = {
    "INSUFFICIENT_INSTANCE_CAPACITY": (
        "EC2 has no capacity of the compute environments' instance types in their Availability Zones "
        "right now; the job starts when some frees up. To start sooner, allow more instance types, or "
        "subnets in more Availability Zones, or add an On-Demand compute environment to the queue"
    ),
}
DEFAULT_ADVICE = (
    "the job starts once the queue's compute environments can place it; if it waits long, check their "
    "state, maxvCpus and instance types (AWS Batch guide: 'Jobs stuck in a RUNNABLE status')"
)
_CODE = re.compile(r"^\s*([A-Z_]+)\s*:\s*([A-Z0-9_]+)", re.IGNORECASE)


def waiting_advice(reason: str) -> str:
    """What an operator can do about a job waiting for this reason."""
    found = _CODE.match(reason)
    if found and found.group(1).upper() == "CAPACITY":
        return CAPACITY_ADVICE.get(found.group(2).upper(), DEFAULT_ADVICE)
    return DEFAULT_ADVICE


def waiting_note(job_id: str, job_name: str, job_queue: str, status: str, reason: str) -> str:
    """The event-log line for a job that waits, naming the job, its queue, the reason and the fix."""
    return (
        f"Batch job {job_id} ({job_name}) waits in {status} on job queue {job_queue}: {reason.strip()}. "
        f"What to do: {waiting_advice(reason)}."
    )


def reason_to_note(status: str, reason: str | None, already_noted: str | None) -> str | None:
    """The reason to write to the task's event log now, if any: a waiting job's reason not written yet."""
    if status not in WAITING_STATUSES or not reason or not reason.strip() or reason == already_noted:
        return None
    return reason
