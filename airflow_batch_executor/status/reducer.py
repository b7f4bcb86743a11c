"""Which "Batch Job State Change" and "Batch Job Queue Blocked" events are news, as pure functions.

EventBridge delivers each event at least once and in no guaranteed order, so an event is applied
only when it moves a job forward. A job's progress is ``(attempts, status rank)``: Batch retries
send a job back to RUNNABLE only with one more attempt on record, so within one job this pair only
ever grows, and the largest one seen is the job's newest state. A final status is never left.

A queue-blocked event carries a RUNNABLE job record with the reason it waits: news for a job not yet
known to be RUNNABLE, a duplicate (whose reason is still worth hearing) for one that is.

Nothing here keeps state, so any thread may call it: ``parse_event`` runs on every receive loop at
once, ``novelty`` on the scheduler's thread against the tracker that thread owns.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_batch_executor.job_contract import FINAL_STATUSES, JOB_STATUSES
from airflow_batch_executor.records import Progress

EVENT_SOURCE = "aws.batch"
EVENT_DETAIL_TYPE = "Batch Job State Change"
QUEUE_BLOCKED_DETAIL_TYPE = "Batch Job Queue Blocked"

# SUCCEEDED and FAILED share the top rank: neither follows the other.
_RANK = {status: min(index, JOB_STATUSES.index("SUCCEEDED")) for index, status in enumerate(JOB_STATUSES)}


class Novelty(enum.Enum):
    NEWS = "news"  # moves the job forward: apply it
    DUPLICATE = "duplicate"  # the same status and attempt count as already applied
    STALE = "stale"  # older than what is already known (late, or overtaken by another event)


@dataclass(frozen=True)
class StatusEvent:
    """One state change of one job; ``record`` has the shape of a DescribeJobs job record."""

    job_id: str
    status: str
    record: dict[str, Any]
    blocked: bool = False
    """A "Batch Job Queue Blocked" event: the job waits in RUNNABLE for ``statusReason``."""

    @property
    def progress(self) -> Progress:
        return progress_of(self.record)


def progress_of(record: Mapping[str, Any]) -> Progress:
    """How far a job record is along its life; unknown statuses rank below SUBMITTED."""
    attempts = record.get("attempts")
    return (len(attempts) if isinstance(attempts, list) else 0, _RANK.get(str(record.get("status")), -1))


def parse_event(body: str) -> StatusEvent | None:
    """The job record an SQS message body carries, or None when it is not a Batch job event."""
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("source") != EVENT_SOURCE:
        return None
    detail, detail_type = message.get("detail"), message.get("detail-type")
    if detail_type not in (EVENT_DETAIL_TYPE, QUEUE_BLOCKED_DETAIL_TYPE) or not isinstance(detail, dict):
        return None
    job_id, status = detail.get("jobId"), detail.get("status")
    if not isinstance(job_id, str) or not isinstance(status, str) or status not in _RANK:
        return None
    return StatusEvent(job_id, status, detail, blocked=detail_type == QUEUE_BLOCKED_DETAIL_TYPE)


def novelty(known: Progress | None, known_status: str | None, event: StatusEvent) -> Novelty:
    """Whether ``event`` moves a job forward from what is already known of it.

    ``known`` is None when nothing has been applied yet (a job just adopted): anything is news.
    """
    if known is None:
        return Novelty.NEWS
    if known_status in FINAL_STATUSES:
        return Novelty.DUPLICATE if event.status == known_status else Novelty.STALE
    if event.progress == known:
        return Novelty.DUPLICATE
    return Novelty.NEWS if event.progress > known else Novelty.STALE
