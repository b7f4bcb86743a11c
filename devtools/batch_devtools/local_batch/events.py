""" "Batch Job State Change" events, published to an SQS queue in moto like EventBridge would.

Each status change of a local job becomes one message in the AWS event envelope (version, id,
detail-type, source ``aws.batch``, account, time, region, resources, and ``detail``: the job's
DescribeJobs record at that moment). The event faults (drop, duplicate, delay, reorder; see
``faults.py``) make delivery as unreliable as EventBridge's is allowed to be. Messages go straight
into moto's SQS backend, so publishing costs no HTTP call and is never hit by API faults.

The ``malformed_events`` fault slips messages that are not valid state-change events in between the
real ones (one per wake-up), built from the latest real event's record when there is one, so a
receiver meets a spoilt message about a job it tracks (see :func:`malformed_body`).

Held jobs (``hold`` mode) move on only when read, so while publishing is on, the publisher's thread
catches each one up at the moments its plan changes its status (``watch``): a held job that stays
RUNNING costs nothing, so tens of thousands of them leave the thread idle. A job caught up late (a
busy thread) still walks through each status it passed, so none is skipped.

A job held in RUNNABLE by a blocked queue (``Faults.block_queue``) publishes a "Batch Job Queue
Blocked" event as it is held, and again when the block's reason changes: the same envelope, with the
queue's ARN after the job's in ``resources``. The event faults are for state changes: they never hit
it, and it never counts as the job's next event (``reorder_events``, ``delay_events(after_status=…)``).
"""

from __future__ import annotations

import copy
import heapq
import itertools
import json
import logging
import queue
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from moto.sqs.models import Message, sqs_backends

from batch_devtools.local_batch.faults import job_subject
from batch_devtools.local_batch.runtime import Runtime

if TYPE_CHECKING:
    from batch_devtools.local_batch.job import LocalJob

DETAIL_TYPE = "Batch Job State Change"
QUEUE_BLOCKED = "Batch Job Queue Blocked"
SOURCE = "aws.batch"
WAKE_SECONDS = 0.02
CHANGE_MARGIN_SECONDS = 0.001
"""Held jobs are caught up this long after a planned change, so the clock has surely passed it."""

logger = logging.getLogger(__name__)


def envelope(
    detail: dict[str, Any], account: str, region: str, detail_type: str = DETAIL_TYPE
) -> dict[str, Any]:
    """The event as EventBridge delivers it to an SQS target; a Queue Blocked event names the queue too."""
    resources = [detail["jobArn"]]
    if detail_type == QUEUE_BLOCKED:
        resources.append(detail["jobQueue"])
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": SOURCE,
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": resources,
        "detail": detail,
    }


OTHER_DETAIL_TYPE = "AWS API Call via CloudTrail"
"""What a rule matching only ``source: aws.batch`` also delivers: Batch API calls seen by CloudTrail."""


def malformed_body(kind: str, base: dict[str, Any] | None, account: str, region: str) -> str:
    """An SQS message body that is not a valid "Batch Job State Change" event, of ``kind``.

    ``base`` is a real job record to spoil (the latest one published), else a made-up job's.
    """
    detail = copy.deepcopy(base) if base is not None else _made_up_detail(account, region)
    message = envelope(detail, account, region)
    if kind == "not_json":
        return json.dumps(message)[:-7]
    if kind == "detail_not_object":
        message["detail"] = f"{detail.get('jobName')} is {detail.get('status')}"
    elif kind == "status_list":
        detail["status"] = [detail.get("status")]
    elif kind == "status_unknown":
        detail["status"] = "EXPLODED"
    elif kind == "job_id_missing":
        detail.pop("jobId", None)
    elif kind == "job_id_number":
        detail["jobId"] = 12345
    elif kind == "other_detail_type":
        message["detail-type"] = OTHER_DETAIL_TYPE
        message["detail"] = {
            "eventSource": "batch.amazonaws.com",
            "eventName": "SubmitJob",
            "awsRegion": region,
            "requestParameters": {"jobName": detail.get("jobName")},
            "responseElements": {"jobId": detail.get("jobId"), "jobArn": detail.get("jobArn")},
        }
    elif kind == "attempts_not_list":
        detail["attempts"] = "1"
    else:
        raise ValueError(f"unknown malformed event kind {kind!r}")
    return json.dumps(message)


def _made_up_detail(account: str, region: str) -> dict[str, Any]:
    job_id = str(uuid.uuid4())
    return {
        "jobArn": f"arn:aws:batch:{region}:{account}:job/{job_id}",
        "jobId": job_id,
        "jobName": "local-batch-malformed",
        "status": "RUNNING",
        "createdAt": int(time.time() * 1000),
        "attempts": [],
    }


class EventPublisher:
    """Takes job records on status changes (from any thread) and sends them from its own thread."""

    def __init__(self, runtime: Runtime, account: str, region: str, queue_name: str) -> None:
        self._runtime = runtime
        self._account = account
        self._region = region
        self._queue_name = queue_name
        self._inbox: queue.SimpleQueue[tuple[str, dict[str, Any]]] = queue.SimpleQueue()
        self._due: list[tuple[float, int, str, str | None, str]] = []
        """(when, order, job id, status, body); status None for a Queue Blocked event."""
        self._held_back: dict[str, list[str]] = {}
        self._held_until: dict[tuple[str, str], list[str]] = {}
        self._watching: queue.SimpleQueue[LocalJob] = queue.SimpleQueue()
        self._changes: list[tuple[float, int, LocalJob]] = []
        self._order = itertools.count()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="local-batch-events", daemon=True)
        self._last_detail: dict[str, Any] | None = None
        self.published = 0
        self.malformed = 0

    @property
    def enabled(self) -> bool:
        return self._runtime.settings.publish_events

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def publish(self, detail: dict[str, Any]) -> None:
        """Queue the event of one status change; call only when ``enabled``."""
        self._inbox.put((DETAIL_TYPE, detail))

    def publish_blocked(self, detail: dict[str, Any]) -> None:
        """Queue the Queue Blocked event of a job its blocked queue holds; call only when ``enabled``."""
        self._inbox.put((QUEUE_BLOCKED, detail))

    def watch(self, job: LocalJob) -> None:
        """Catch this held job up at each of its planned status changes (call from any thread)."""
        self._watching.put(job)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._route(self._inbox.get(timeout=WAKE_SECONDS))
                while True:
                    self._route(self._inbox.get_nowait())
            except queue.Empty:
                pass
            self._send_due()
            self._send_malformed()
            self._plan_watched_jobs()
            if self.enabled:
                self._advance_held_jobs()

    def _route(self, item: tuple[str, dict[str, Any]]) -> None:
        detail_type, detail = item
        if detail_type == QUEUE_BLOCKED:
            body = json.dumps(envelope(detail, self._account, self._region, QUEUE_BLOCKED))
            heapq.heappush(self._due, (time.monotonic(), next(self._order), detail["jobId"], None, body))
            return
        faults, status = self._runtime.faults, detail["status"]
        subject = job_subject(detail["jobName"], detail.get("arrayProperties", {}).get("index"))
        job_id, body = detail["jobId"], json.dumps(envelope(detail, self._account, self._region))
        self._last_detail = detail
        if faults.claim_event_fault("drop_events", subject, status) is not None:
            logger.info("Dropping the %s event of job %s", status, job_id)
            return
        if faults.claim_event_fault("reorder_events", subject, status) is not None:
            self._held_back.setdefault(job_id, []).append(body)
            return
        delay = faults.claim_event_fault("delay_events", subject, status)
        if delay is not None and delay.after_status is not None:
            self._held_until.setdefault((job_id, delay.after_status), []).append(body)
            return
        copies = faults.claim_event_fault("duplicate_events", subject, status)
        due = time.monotonic() + (delay.seconds if delay is not None else 0.0)
        for _ in range(copies.copies if copies is not None else 1):
            heapq.heappush(self._due, (due, next(self._order), job_id, status, body))

    def _send_due(self) -> None:
        now = time.monotonic()
        while self._due and self._due[0][0] <= now:
            _, _, job_id, status, body = heapq.heappop(self._due)
            self._send(body)
            if status is None:  # a Queue Blocked event is no state change: it releases none held back
                continue
            for held in [*self._held_back.pop(job_id, []), *self._held_until.pop((job_id, status), [])]:
                self._send(held)

    def _send_malformed(self) -> None:
        kind = self._runtime.faults.claim_malformed_event()
        if kind is None:
            return
        logger.info("Publishing a malformed status message (%s)", kind)
        self._send(malformed_body(kind, self._last_detail, self._account, self._region))
        self.malformed += 1

    def _send(self, body: str) -> None:
        """Add the message to the queue as moto's ``send_message`` does for a standard queue.

        ``send_message`` reads the queue's attributes, which counts every message in the queue: each
        send would cost as much as the backlog is long (seconds per event behind 100,000 events).
        """
        try:
            queue = sqs_backends[self._account][self._region].get_queue(self._queue_name)
            message = Message(str(uuid.uuid4()), body)
            message.mark_sent(delay_seconds=queue.delay_seconds)
            queue.add_message(message)
            self.published += 1
        except Exception:
            logger.exception("Could not publish a job state-change event to %s", self._queue_name)

    @property
    def pending_changes(self) -> int:
        """Planned status changes of held jobs still to catch up (none for jobs that stay RUNNING)."""
        return len(self._changes)

    def _plan_watched_jobs(self) -> None:
        """A newly watched job is caught up at once: it may have moved on since it was submitted."""
        while True:
            try:
                job = self._watching.get_nowait()
            except queue.Empty:
                return
            heapq.heappush(self._changes, (time.time(), next(self._order), job))

    def _plan_next_change(self, job: LocalJob, after: float) -> None:
        when = job.next_change(after)
        if when is not None:
            heapq.heappush(self._changes, (when + CHANGE_MARGIN_SECONDS, next(self._order), job))

    def _advance_held_jobs(self) -> None:
        """Catch up the held jobs whose status has changed since; their changes publish the events."""
        now = time.time()
        while self._changes and self._changes[0][0] <= now:
            _, _, job = heapq.heappop(self._changes)
            job.catch_up()
            self._plan_next_change(job, now)
