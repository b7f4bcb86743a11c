"""An SQS queue in memory behind the two calls the status queue's gateway makes, each taking a fixed time.

Not moto: moto's SQS slows down as its queue deepens, so a burst of 10,000 messages would measure
moto. Here every ReceiveMessage and DeleteMessageBatch takes ``latency`` seconds (a sleep, outside
any lock, so calls side by side overlap as they do against AWS), whatever the queue holds. Like SQS:

- a long poll answers at once when a message is visible, else waits up to ``WaitTimeSeconds`` for one;
- a received message is invisible for ``visibility_timeout`` seconds, then handed out again (counted
  in ``redelivered``) unless it was deleted with the receipt handle of its latest receive;
- every receive hands out a new receipt handle and counts ``ApproximateReceiveCount``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass
class _Message:
    message_id: str
    body: str
    receives: int = 0
    receipt: str | None = None
    """The receipt handle of its latest receive; None while visible or once deleted."""


class StubSqs:
    """One queue: ``send_all`` puts messages on it at once; the two calls are boto3's, as the gateway
    makes them. Counters are read after the run."""

    def __init__(self, latency: float, visibility_timeout: float) -> None:
        self._latency = latency
        self._visibility_timeout = visibility_timeout
        self._changed = threading.Condition()
        self._visible: deque[_Message] = deque()
        self._in_flight: deque[tuple[float, _Message, str]] = deque()
        """(visible again at, message, receipt) in the order received, so in the order they expire."""
        self._by_receipt: dict[str, _Message] = {}
        """The messages in flight, by the receipt handle of their latest receive."""
        self._closed = False
        self.receive_calls = 0
        self.empty_receives = 0
        self.delete_calls = 0
        self.deleted = 0
        self.refused_deletes = 0
        self.redelivered = 0
        self.receiving = 0
        self.most_receiving = 0

    def send_all(self, bodies: list[str]) -> None:
        with self._changed:
            self._visible.extend(_Message(f"m{index}", body) for index, body in enumerate(bodies))
            self._changed.notify_all()

    def close(self) -> None:
        """End every long poll under way with no messages."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def receive_message(
        self, QueueUrl: str, MaxNumberOfMessages: int, WaitTimeSeconds: int, AttributeNames: list[str]
    ) -> dict[str, Any]:
        with self._changed:
            self.receive_calls += 1
            self.receiving += 1
            self.most_receiving = max(self.most_receiving, self.receiving)
        try:
            time.sleep(self._latency)
            return self._take(MaxNumberOfMessages, time.monotonic() + WaitTimeSeconds)
        finally:
            with self._changed:
                self.receiving -= 1

    def _take(self, most: int, deadline: float) -> dict[str, Any]:
        with self._changed:
            while True:
                now = time.monotonic()
                self._expire(now)
                if self._visible or self._closed or now >= deadline:
                    break
                next_expiry = self._in_flight[0][0] if self._in_flight else deadline
                self._changed.wait(timeout=max(0.0, min(deadline, next_expiry) - now))
            taken = [self._visible.popleft() for _ in range(min(most, len(self._visible)))]
            messages = []
            for message in taken:
                message.receives += 1
                message.receipt = f"{message.message_id}/{message.receives}"
                self._in_flight.append((now + self._visibility_timeout, message, message.receipt))
                self._by_receipt[message.receipt] = message
                messages.append(
                    {
                        "MessageId": message.message_id,
                        "ReceiptHandle": message.receipt,
                        "Body": message.body,
                        "Attributes": {"ApproximateReceiveCount": str(message.receives)},
                    }
                )
            if not messages:
                self.empty_receives += 1
        return {"Messages": messages} if messages else {}

    def _expire(self, now: float) -> None:
        """Messages whose visibility timeout ran out, undeleted, are visible again."""
        while self._in_flight and self._in_flight[0][0] <= now:
            _, message, receipt = self._in_flight.popleft()
            if message.receipt == receipt:
                message.receipt = None
                del self._by_receipt[receipt]
                self._visible.append(message)
                self.redelivered += 1

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        time.sleep(self._latency)
        successful, failed = [], []
        with self._changed:
            self.delete_calls += 1
            for entry in Entries:
                message = self._by_receipt.pop(entry["ReceiptHandle"], None)
                if message is not None:
                    message.receipt = None
                    self.deleted += 1
                    successful.append({"Id": entry["Id"]})
                else:
                    self.refused_deletes += 1
                    failed.append({"Id": entry["Id"], "SenderFault": True, "Code": "ReceiptHandleIsInvalid"})
        return {"Successful": successful, "Failed": failed}
