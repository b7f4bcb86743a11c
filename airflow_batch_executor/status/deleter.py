"""Deletes of handled status messages, in the background, at the pace they are received.

The scheduler's thread acknowledges the messages it has handled; the delete thread takes everything
acknowledged meanwhile and deletes it in DeleteMessageBatch calls of 10. Under a burst the receiver
runs several long polls side by side (see :mod:`.receiver`): one delete call at a time would then
delete fewer messages a second than arrive, and a message still undeleted after the queue's
visibility timeout (10 s in the template) is handed out again. So each round of deletes is spread
over as many calls side by side as receive loops are running, or as its own size asks for when more
waited (``PART_BATCHES``: a slow heartbeat may acknowledge a whole burst after the loops shrank back
to one), up to the receiver's concurrency: the first on the delete thread, the others on short-lived
daemon threads (a delete under way never holds up the scheduler's exit, as no status thread does). A
quiet queue has one receive loop and few acknowledgements, so its deletes start no thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence

from airflow_batch_executor.aws.errors import describe_api_error
from airflow_batch_executor.aws.queue_gateway import DELETE_MAX_ENTRIES, StatusQueueGateway

log = logging.getLogger(__name__)

PART_BATCHES = 10
"""Batches of 10 one caller deletes in a round before another caller joins: at SQS's 20 to 50 ms a
call, a round of any size then ends well within the template's 10 s visibility timeout."""


def spread(receipts: Sequence[str], parts: int) -> list[list[str]]:
    """``receipts``, in order, in at most ``parts`` slices of whole batches of 10 (the last may be short)."""
    if not receipts:
        return []
    batches = -(-len(receipts) // DELETE_MAX_ENTRIES)
    size = DELETE_MAX_ENTRIES * -(-batches // max(1, parts))
    return [list(receipts[start : start + size]) for start in range(0, len(receipts), size)]


class MessageDeleter:
    """``acknowledge()`` from the scheduler's thread, ``run()`` as the delete thread's loop.

    ``width()`` says how many delete calls run side by side now at least: the receive loops running;
    ``most`` is the most that ever do.
    """

    def __init__(self, gateway: StatusQueueGateway, width: Callable[[], int], most: int = 1) -> None:
        self._gateway = gateway
        self._width = width
        self._most = max(1, most)
        # Put by the scheduler's thread (receipts) and by close() (None: finish); taken by run() alone.
        self._acknowledged: queue.SimpleQueue[str | None] = queue.SimpleQueue()

    def acknowledge(self, receipts: Sequence[str]) -> None:
        for receipt in receipts:
            self._acknowledged.put(receipt)

    def close(self) -> None:
        """Make ``run()`` return once what was acknowledged before is deleted."""
        self._acknowledged.put(None)

    def run(self) -> None:
        finishing = False
        while not finishing:
            waiting = [self._acknowledged.get()]
            while not self._acknowledged.empty():
                waiting.append(self._acknowledged.get())
            finishing = None in waiting
            if receipts := [receipt for receipt in waiting if receipt is not None]:
                self._delete_round(receipts)

    def parts(self, count: int) -> int:
        """Delete calls side by side for a round of ``count`` receipts."""
        batches = -(-count // DELETE_MAX_ENTRIES)
        return min(self._most, max(self._width(), -(-batches // PART_BATCHES)))

    def _delete_round(self, receipts: list[str]) -> None:
        first, *others = spread(receipts, self.parts(len(receipts)))
        helpers = [
            threading.Thread(target=self._delete, args=(part,), name="batch-status-deletes", daemon=True)
            for part in others
        ]
        for helper in helpers:
            helper.start()
        self._delete(first)
        for helper in helpers:
            helper.join()

    def _delete(self, receipts: list[str]) -> None:
        try:
            if refused := self._gateway.delete(receipts):
                log.warning("The status queue refused to delete %d message(s); they will come back", refused)
        except Exception as error:  # noqa: BLE001 - undeleted messages come back as duplicates
            log.warning(
                "Could not delete %d message(s) from the status queue %s (%s); they will come back and "
                "be dropped as duplicates",
                len(receipts),
                self._gateway.queue_url,
                describe_api_error(error),
            )
