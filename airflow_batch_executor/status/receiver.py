"""Batch job state-change events off the scheduler's thread: long-polls the status queue.

Shaped like the poller: a receiver thread long-polls SQS and keeps what it got until the scheduler
thread drains it with ``results()``; whether an event is news, and whether its message may be
deleted, is decided there (only that thread knows which jobs are tracked), and the receipts it hands
back with ``acknowledge()`` are deleted in batches by a second thread. Nothing here blocks a heartbeat.

While the queue does not answer, or the receiver thread crashed and is being restarted, ``answering``
is False and the supervisor describes every job at the normal poll interval instead; the receiver
keeps trying, and events flow again once it answers. A message that cannot be read is left on the
queue, so SQS moves it to the dead-letter queue after its receive limit; it never stops the receiver.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

from airflow_batch_executor.aws.errors import describe_api_error
from airflow_batch_executor.aws.queue_gateway import WAIT_SECONDS, StatusQueueGateway
from airflow_batch_executor.background import SupervisedThread
from airflow_batch_executor.metrics import GLOBAL, Metrics
from airflow_batch_executor.status.reducer import StatusEvent, parse_event

RETRY_MIN_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceivedEvent:
    """One message of the status queue; ``receive_count`` is how often SQS has handed it out."""

    receipt: str
    receive_count: int
    event: StatusEvent


class StatusEventReceiver:
    def __init__(self, gateway: StatusQueueGateway, metrics: Metrics = GLOBAL) -> None:
        self._gateway = gateway
        self._metrics = metrics
        self._wait_seconds = WAIT_SECONDS
        self._lock = threading.Lock()
        self._received: list[ReceivedEvent] = []
        self._acknowledged: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._threads: list[SupervisedThread] = []
        self.answering = True

    def start(self) -> None:
        for name, target in (("batch-status-events", self._receive), ("batch-status-acks", self._delete)):
            thread = SupervisedThread(
                name, target, self._stopping, metrics=self._metrics, on_crash=self._lost
            )
            thread.start()
            self._threads.append(thread)

    def results(self) -> list[ReceivedEvent]:
        """Events received since the last call."""
        with self._lock:
            received, self._received = self._received, []
        return received

    def acknowledge(self, receipts: list[str]) -> None:
        """Delete these messages from the queue, in the background."""
        for receipt in receipts:
            self._acknowledged.put(receipt)

    def stop(self) -> None:
        """Stop receiving; a long poll under way ends on its own (the threads are daemons)."""
        self._stopping.set()
        self._acknowledged.put(None)
        for thread in self._threads:
            thread.join(timeout=1.0)

    def _receive(self) -> None:
        pause = RETRY_MIN_SECONDS
        while not self._stopping.is_set():
            try:
                messages = self._gateway.receive(self._wait_seconds)
            except Exception as error:  # noqa: BLE001 - any failure means: fall back to polling
                self._lost(error)
                self._stopping.wait(pause)
                pause = min(pause * 2, RETRY_MAX_SECONDS)
                continue
            pause = RETRY_MIN_SECONDS
            if not self.answering:
                self.answering = True
                log.warning("The status queue %s answers again; job status comes from its events", self._url)
            self._keep(messages)

    def _keep(self, messages: list[dict[str, Any]]) -> None:
        received = []
        for message in messages:
            try:
                event = parse_event(message.get("Body", ""))
                count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
                receipt = message["ReceiptHandle"]
            except Exception:  # noqa: BLE001 - one unreadable message must never stop the rest
                event = None
            if event is None:
                log.warning(
                    "Message %s on the status queue %s is not a Batch Job State Change event; it is left "
                    "for the queue's dead-letter queue. Check the EventBridge rule that feeds the queue.",
                    message.get("MessageId"),
                    self._url,
                )
                self._metrics.incr("status_events.unreadable")
                continue
            received.append(ReceivedEvent(receipt, count, event))
        self._metrics.incr("status_events.received", len(received))
        with self._lock:
            self._received += received

    def _lost(self, error: BaseException) -> None:
        if self.answering:
            self.answering = False
            self._metrics.incr("status_events.queue_failed")
            log.warning(
                "The status queue %s does not answer (%s); falling back to DescribeJobs at "
                "[aws_batch_executor] status_poll_interval until it answers again. Check that the queue "
                "exists and the scheduler may sqs:ReceiveMessage and sqs:DeleteMessage on it.",
                self._url,
                describe_api_error(error),
            )

    def _delete(self) -> None:
        stopping = False
        while not stopping:
            waiting = [self._acknowledged.get()]
            while not self._acknowledged.empty():
                waiting.append(self._acknowledged.get())
            stopping = None in waiting
            if batch := [receipt for receipt in waiting if receipt is not None]:
                self._delete_batch(batch)

    def _delete_batch(self, batch: list[str]) -> None:
        try:
            if refused := self._gateway.delete(batch):
                log.warning("The status queue refused to delete %d message(s); they will come back", refused)
        except Exception as error:  # noqa: BLE001 - undeleted messages come back as duplicates
            log.warning(
                "Could not delete %d message(s) from the status queue %s (%s); they will come back and "
                "be dropped as duplicates",
                len(batch),
                self._url,
                describe_api_error(error),
            )

    @property
    def _url(self) -> str:
        return self._gateway.queue_url
