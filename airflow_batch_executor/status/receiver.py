"""Batch job state-change events off the scheduler's thread: long-polls the status queue, with as many
long polls side by side as its backlog needs.

Shaped like the poller: receive loops long-poll SQS and keep what they got until the scheduler thread
drains it with ``results()``; whether an event is news, and whether its message may be deleted, is
decided there (only that thread knows which jobs are tracked, and only it touches the tracker), and
the receipts it hands back with ``acknowledge()`` are deleted in batches by the delete thread
(:mod:`.deleter`). Nothing here blocks a heartbeat.

One receive takes at most 10 messages, so one loop drains about 10 messages per round trip; a wide
mapped task that ends at once puts thousands of events on the queue. So the loops follow the backlog:
a receive that comes back full (10 messages) starts one more loop, up to ``concurrency``
(``status_receive_concurrency``), and an extra loop whose receive comes back short or empty stops.
Full answers double the loops every round trip; once the backlog is drained, the extra loops stop
within one long poll of ``EXTRA_WAIT_SECONDS``, and a quiet queue costs one long poll at a time.

While the queue does not answer, or a receive thread crashed and is being restarted, ``answering``
is False and the supervisor describes every job at the normal poll interval instead; the first loop
keeps trying (the extra ones stop), and events flow again once it answers. A message that cannot be
read is left on the queue, so SQS moves it to the dead-letter queue after its receive limit; it never
stops a loop.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from airflow_batch_executor.aws.errors import describe_api_error
from airflow_batch_executor.aws.queue_gateway import RECEIVE_MAX_MESSAGES, WAIT_SECONDS, StatusQueueGateway
from airflow_batch_executor.background import SupervisedThread
from airflow_batch_executor.metrics import GLOBAL, Metrics
from airflow_batch_executor.status.deleter import MessageDeleter
from airflow_batch_executor.status.reducer import StatusEvent, parse_event

RETRY_MIN_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0
EXTRA_WAIT_SECONDS = 1
"""The long-poll wait of an extra loop: it is there for a backlog, so on a queue gone quiet it should
find out (and stop) within a second rather than hold a connection for a whole long poll."""
STOP_WAIT_SECONDS = 1.0
"""How long ``stop()`` waits for all the threads together; a long poll under way is left to end."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceivedEvent:
    """One message of the status queue; ``receive_count`` is how often SQS has handed it out."""

    receipt: str
    receive_count: int
    event: StatusEvent


class StatusEventReceiver:
    def __init__(self, gateway: StatusQueueGateway, metrics: Metrics = GLOBAL, concurrency: int = 1) -> None:
        """``concurrency``: the most receive loops that run side by side (1: a single long poll)."""
        self._gateway = gateway
        self._metrics = metrics
        self._concurrency = concurrency
        self._wait_seconds = WAIT_SECONDS
        self._stopping = threading.Event()
        # Appended to by every receive loop, swapped out by the scheduler's thread: both under _lock.
        self._lock = threading.Lock()
        self._received: list[ReceivedEvent] = []
        # Changed by the receive loops (and a crashed thread's callback) under _state_lock alone. Read
        # without it, as one attribute read that is at worst a moment stale: ``answering`` by the
        # scheduler's thread, ``_loops`` by the delete thread.
        self._state_lock = threading.Lock()
        self._loops = 1
        self._extras: list[SupervisedThread] = []
        self.answering = True
        # Set once by start(): the first receive loop and the delete thread, which run until stop().
        self._threads: list[SupervisedThread] = []
        self._deleter = MessageDeleter(gateway, lambda: self._loops, concurrency)

    def start(self) -> None:
        for name, target in (
            ("batch-status-events", self._receive),
            ("batch-status-acks", self._deleter.run),
        ):
            thread = SupervisedThread(
                name, target, self._stopping, metrics=self._metrics, on_crash=self._lost
            )
            thread.start()
            self._threads.append(thread)
        self._metrics.gauge("status_events.receive_loops", 1)

    def results(self) -> list[ReceivedEvent]:
        """Events received since the last call."""
        with self._lock:
            received, self._received = self._received, []
        return received

    def acknowledge(self, receipts: Sequence[str]) -> None:
        """Delete these messages from the queue, in the background."""
        self._deleter.acknowledge(receipts)

    def stop(self) -> None:
        """Stop receiving; a long poll under way ends on its own (the threads are daemons)."""
        self._stopping.set()
        self._deleter.close()
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        with self._state_lock:
            threads = self._threads + self._extras
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _receive(self, extra: bool = False) -> None:
        """One receive loop: the first one runs until ``stop()``, an extra one until its receive comes
        back short, empty or failed."""
        wait = min(self._wait_seconds, EXTRA_WAIT_SECONDS) if extra else self._wait_seconds
        pause = RETRY_MIN_SECONDS
        while not self._stopping.is_set():
            try:
                messages = self._gateway.receive(wait)
            except Exception as error:  # noqa: BLE001 - any failure means: fall back to polling
                self._lost(error)
                if extra:
                    self._leave()
                    return
                self._stopping.wait(pause)
                pause = min(pause * 2, RETRY_MAX_SECONDS)
                continue
            pause = RETRY_MIN_SECONDS
            self._answered()
            self._keep(messages)
            if len(messages) >= RECEIVE_MAX_MESSAGES:
                self._grow()
            elif extra:
                self._leave()
                return

    def _grow(self) -> None:
        """One more receive loop, unless ``concurrency`` of them run already."""
        with self._state_lock:
            if self._loops >= self._concurrency or self._stopping.is_set():
                return
            self._loops += 1
            thread = SupervisedThread(
                f"batch-status-events-{self._loops}",
                functools.partial(self._receive, extra=True),
                self._stopping,
                metrics=self._metrics,
                on_crash=self._lost,
            )
            thread.start()
            self._extras = [extra for extra in self._extras if extra.is_alive()] + [thread]
            loops = self._loops
        self._metrics.gauge("status_events.receive_loops", loops)

    def _leave(self) -> None:
        """An extra loop stops."""
        with self._state_lock:
            self._loops -= 1
            loops = self._loops
        self._metrics.gauge("status_events.receive_loops", loops)

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
                    "Message %s on the status queue %s is neither a Batch Job State Change nor a Batch Job "
                    "Queue Blocked event; it is left "
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

    def _answered(self) -> None:
        if self.answering:
            return
        with self._state_lock:
            if self.answering:
                return
            self.answering = True
        log.warning("The status queue %s answers again; job status comes from its events", self._url)

    def _lost(self, error: BaseException) -> None:
        with self._state_lock:
            if not self.answering:
                return
            self.answering = False
        self._metrics.incr("status_events.queue_failed")
        log.warning(
            "The status queue %s does not answer (%s); falling back to DescribeJobs at "
            "[aws_batch_executor] status_poll_interval until it answers again. Check that the queue "
            "exists and the scheduler may sqs:ReceiveMessage and sqs:DeleteMessage on it.",
            self._url,
            describe_api_error(error),
        )

    @property
    def _url(self) -> str:
        return self._gateway.queue_url
