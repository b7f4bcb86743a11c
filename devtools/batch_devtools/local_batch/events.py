""" "Batch Job State Change" events, published to an SQS queue in moto like EventBridge would.

Each status change of a local job becomes one message in the AWS event envelope (version, id,
detail-type, source ``aws.batch``, account, time, region, resources, and ``detail``: the job's
DescribeJobs record at that moment). The event faults (drop, duplicate, delay, reorder; see
``faults.py``) make delivery as unreliable as EventBridge's is allowed to be. Messages go straight
into moto's SQS backend, so publishing costs no HTTP call and is never hit by API faults.

Held jobs (``hold`` mode) move on only when read, so while publishing is on, a thread reads each
unfinished held job every ``HELD_TICK_SECONDS``: their events may skip a status that lasted less.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import queue
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from moto.sqs.models import sqs_backends

from batch_devtools.local_batch.runtime import Runtime

DETAIL_TYPE = "Batch Job State Change"
SOURCE = "aws.batch"
HELD_TICK_SECONDS = 0.2

logger = logging.getLogger(__name__)


def envelope(detail: dict[str, Any], account: str, region: str) -> dict[str, Any]:
    """The event as EventBridge delivers it to an SQS target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": SOURCE,
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [detail["jobArn"]],
        "detail": detail,
    }


class EventPublisher:
    """Takes job records on status changes (from any thread) and sends them from its own thread."""

    def __init__(self, runtime: Runtime, account: str, region: str, queue_name: str) -> None:
        self._runtime = runtime
        self._account = account
        self._region = region
        self._queue_name = queue_name
        self._inbox: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._due: list[tuple[float, int, str, str]] = []
        self._held_back: dict[str, list[str]] = {}
        self._order = itertools.count()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="local-batch-events", daemon=True)
        self.published = 0

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
        self._inbox.put(detail)

    def _run(self) -> None:
        next_tick = 0.0
        while not self._stopping.is_set():
            try:
                self._route(self._inbox.get(timeout=0.02))
            except queue.Empty:
                pass
            self._send_due()
            if self.enabled and time.monotonic() >= next_tick:
                next_tick = time.monotonic() + HELD_TICK_SECONDS
                self._advance_held_jobs()

    def _route(self, detail: dict[str, Any]) -> None:
        faults, name, status = self._runtime.faults, detail["jobName"], detail["status"]
        job_id, body = detail["jobId"], json.dumps(envelope(detail, self._account, self._region))
        if faults.claim_event_fault("drop_events", name, status) is not None:
            logger.info("Dropping the %s event of job %s", status, job_id)
            return
        if faults.claim_event_fault("reorder_events", name, status) is not None:
            self._held_back.setdefault(job_id, []).append(body)
            return
        delay = faults.claim_event_fault("delay_events", name, status)
        copies = faults.claim_event_fault("duplicate_events", name, status)
        due = time.monotonic() + (delay.seconds if delay is not None else 0.0)
        for _ in range(copies.copies if copies is not None else 1):
            heapq.heappush(self._due, (due, next(self._order), job_id, body))

    def _send_due(self) -> None:
        now = time.monotonic()
        while self._due and self._due[0][0] <= now:
            _, _, job_id, body = heapq.heappop(self._due)
            self._send(body)
            for held in self._held_back.pop(job_id, []):
                self._send(held)

    def _send(self, body: str) -> None:
        try:
            sqs_backends[self._account][self._region].send_message(self._queue_name, body)
            self.published += 1
        except Exception:
            logger.exception("Could not publish a job state-change event to %s", self._queue_name)

    def _advance_held_jobs(self) -> None:
        for job in self._runtime.jobs.all():
            if job.held and not job.finished:
                job.catch_up()
