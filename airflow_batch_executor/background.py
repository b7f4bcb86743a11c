"""Background threads that outlive their own bugs.

The executor's threads (submit workers, the status receiver, the S3 object workers) each run a loop.
A loop that raises would silently stop its part of the executor: submissions pile up, status stops,
tokens expire. :class:`SupervisedThread` logs the crash, counts it, tells its owner (so the owner can
say what is true meanwhile, e.g. that the status queue is not being read), and starts the loop again
after a pause that grows while it keeps crashing.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import TypeVar

from airflow_batch_executor.metrics import GLOBAL, Metrics

RESTART_MIN_SECONDS = 0.5
RESTART_MAX_SECONDS = 30.0

log = logging.getLogger(__name__)

T = TypeVar("T")


def drain(handed_over: queue.SimpleQueue[T]) -> list[T]:
    """What background threads handed over since the last call, in order; never waits (the scheduler's
    thread reads their results this way)."""
    drained = []
    while True:
        try:
            drained.append(handed_over.get_nowait())
        except queue.Empty:
            return drained


class SupervisedThread:
    """A daemon thread running ``loop`` until ``stopping`` is set; a loop that raises is restarted.

    ``loop`` returns when its work is over (usually because ``stopping`` was set).
    """

    def __init__(
        self,
        name: str,
        loop: Callable[[], None],
        stopping: threading.Event,
        *,
        metrics: Metrics = GLOBAL,
        on_crash: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.name = name
        self._loop = loop
        self._stopping = stopping
        self._metrics = metrics
        self._on_crash = on_crash
        self.restarts = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        pause = RESTART_MIN_SECONDS
        while not self._stopping.is_set():
            try:
                self._loop()
                return
            except Exception as error:
                self.restarts += 1
                log.exception(
                    "The executor's background thread %s crashed; restarting it in %.1fs", self.name, pause
                )
                self._metrics.incr_labelled("background.restarted", self.name.rstrip("-0123456789"))
                if self._on_crash is not None:
                    self._on_crash(error)
                self._stopping.wait(pause)
                pause = min(pause * 2, RESTART_MAX_SECONDS)
