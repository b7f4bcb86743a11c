"""When an array child is given its workload: once its container starts, and only its first attempt.

An array's children wait without a workload (nothing secret exists while they wait); each is given
its own, keyed by its ECS task, when a scheduler sees it start
(:mod:`~airflow_batch_executor.workloads.delivery`).
Batch may start a child more than once: an attempt that fails to start, or a retry strategy, gives it a
new ECS task. Only the first attempt that starts receives the workload; a later one waits, finds
nothing and ends with ``EXIT_NOT_DELIVERED``, so the try runs at most once whatever Batch does.
"""

from __future__ import annotations

from enum import Enum

from airflow_batch_executor.job_contract import FINAL_STATUSES

STARTED_STATUSES = frozenset({"STARTING", "RUNNING"})
"""A child has an ECS task (``container.taskArn``) from STARTING on; its bootstrap runs once RUNNING."""


class Delivery(Enum):
    WAIT = "wait"
    """Not started yet (or no task ARN seen yet): nothing to deliver to."""
    DELIVER = "deliver"
    """Started, and no attempt of the child was given its workload: write it for this task."""
    DONE = "done"
    """This attempt was given its workload already."""
    REFUSE = "refuse"
    """Another attempt of the child was given the workload: this one must never run the try."""
    DROP = "drop"
    """The try is no longer wanted (revoked, or the child is over): deliver nothing."""


def decide(status: str, task_arn: str | None, delivered_to: str | None, *, wanted: bool = True) -> Delivery:
    """What to do for a child seen in ``status`` with its current attempt's ``task_arn``, given the task
    its workload was delivered to (``delivered_to``, None when none was)."""
    if delivered_to is not None:
        return Delivery.DONE if delivered_to == task_arn else Delivery.REFUSE
    if not wanted or status in FINAL_STATUSES:
        return Delivery.DROP
    if status not in STARTED_STATUSES or not task_arn:
        return Delivery.WAIT
    return Delivery.DELIVER
