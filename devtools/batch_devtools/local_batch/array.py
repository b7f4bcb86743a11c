"""Array jobs: SubmitJob with ``arrayProperties.size`` N runs N children under one parent, as AWS does.

moto's ``submit_job`` builds the parent, then the children ``<parent id>:<index>`` (index 0 to N-1), each
a :class:`~batch_devtools.local_batch.job.LocalJob` of its own: the parent's command and definition, its
own attempts, status, exit code, log stream and events, and ``AWS_BATCH_JOB_ARRAY_INDEX`` (and
``AWS_BATCH_JOB_ARRAY_SIZE``) in its environment. The parent runs nothing and has no thread: it is "a
reference or pointer to manage all the child jobs" (AWS's words), so its status follows its children's,
pushed by each child's status change at O(1) a change, so an array of 10,000 held children keeps no
thread and no timer of its own. Reading the parent brings its held children up to the clock first
(about 50 ms for 10,000 of them on a 2-core machine), as reading a held job does.

As AWS documents: the parent is SUBMITTED, becomes PENDING once a child reaches RUNNABLE, and ends once
every child has ended: SUCCEEDED when all of them succeeded, else FAILED. It is never RUNNABLE, STARTING
or RUNNING.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from moto.batch.exceptions import ClientException

from airflow_batch_executor.job_contract import JOB_STATUSES
from airflow_batch_executor.job_contract import MAX_ARRAY_SIZE as MAX_SIZE
from airflow_batch_executor.job_contract import MIN_ARRAY_SIZE as MIN_SIZE

if TYPE_CHECKING:
    from batch_devtools.local_batch.job import LocalJob

SIZE_VARIABLE = "AWS_BATCH_JOB_ARRAY_SIZE"
SUBMITTED, PENDING, SUCCEEDED, FAILED = "SUBMITTED", "PENDING", "SUCCEEDED", "FAILED"
PAST_PENDING = ("RUNNABLE", "STARTING", "RUNNING", SUCCEEDED, FAILED)
"""A child in any of these has reached RUNNABLE: its parent is PENDING from then on."""


def validate_size(array_properties: dict[str, Any] | None) -> None:
    """Refuse an array size AWS refuses (it accepts 2 to 10,000) with a ClientException, as AWS does
    (the wording of AWS's message is not documented; this one names the range)."""
    if not array_properties or "size" not in array_properties:
        return
    size = array_properties["size"]
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ClientException(f"Array size must be between {MIN_SIZE} and {MAX_SIZE:,}, got {size!r}")


def parent_id(child_id: str) -> str:
    """The parent's job id of a child's ``<parent id>:<index>``."""
    return child_id.rsplit(":", 1)[0]


class ArrayParent:
    """What an array's parent knows of its children: who they are and how many are in each status.

    Not locked on its own: the parent job calls it with its lock held, so that a child's move and the
    parent status it leads to are one step (two children ending at once must not leave the parent on
    the status the first of them worked out).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.children: list[LocalJob] = []
        self._counts = dict.fromkeys(JOB_STATUSES, 0)
        self._counts[SUBMITTED] = size
        """Children are counted SUBMITTED from the start: moto builds them right after the parent, each
        SUBMITTED until it moves, so the parent's own SUBMITTED event already counts all of them."""

    def adopt(self, child: LocalJob) -> None:
        self.children.append(child)

    def moved(self, previous: str, current: str) -> None:
        """A child went from ``previous`` to ``current``."""
        self._counts[previous] -= 1
        self._counts[current] += 1

    @property
    def status(self) -> str:
        """The parent's status, as AWS derives it from its children's."""
        succeeded, failed = self._counts[SUCCEEDED], self._counts[FAILED]
        if succeeded + failed == self.size:
            return SUCCEEDED if succeeded == self.size else FAILED
        if any(self._counts[status] for status in PAST_PENDING):
            return PENDING
        return SUBMITTED

    def properties(self, summary: bool) -> dict[str, Any]:
        """The parent's ``arrayProperties``: its ``size`` in a ListJobs ``summary``, and in DescribeJobs
        also its ``statusSummary``, how many children are in each status."""
        if summary:
            return {"size": self.size}
        return {"statusSummary": dict(self._counts), "size": self.size}
