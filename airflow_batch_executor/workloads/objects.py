"""Workload objects in S3 once written: what the executor knows of each, and the background work on them.

A job's bootstrap reads its workload object and deletes it, so a consumed object must never come
back: a Batch retry of a job whose container already started, or a second job of the same try, would
find it and run the try again. Every rewrite the executor makes of an object a job may already hold
(a token refresh, a retry after a lost SubmitJob answer) is therefore conditional on the ETag of the
executor's own last write (S3 ``If-Match``): S3 refuses it (412, or 404 for a deleted object) once
anyone else changed or deleted the object, and the executor then knows the object is consumed.

Background work (token refreshes, array children's deliveries, removals) runs on object worker
threads, never in the scheduler's heartbeat. Refreshes have threads of their own: a removal only tidies
up, while a refresh stuck behind slow removals lets a waiting job's token expire; and so have
deliveries, which come thousands at once when a wide map's children start. Removals are batched
(DeleteObjects, 1,000 keys per call) on one thread. Shutdown waits at most ``SHUTDOWN_SECONDS`` for
what is queued; objects still queued for removal then are left to the bucket's lifecycle rule (the
template's expires them after a day), and the count is logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from airflow_batch_executor.aws.errors import describe_api_error
from airflow_batch_executor.aws.gateway import DELETE_OBJECTS_MAX_KEYS, BatchGateway
from airflow_batch_executor.background import SupervisedThread
from airflow_batch_executor.job_contract import split_s3_uri
from airflow_batch_executor.metrics import GLOBAL, Metrics

REFRESH_THREADS = 4
DELIVERY_THREADS = 16
"""Array children's deliveries (two conditional writes each) side by side: a wide map's children start
together, each holding its place on a host until its workload comes."""
SHUTDOWN_SECONDS = 5.0
"""How long the executor's shutdown waits for queued S3 work (removals) before leaving it."""

log = logging.getLogger(__name__)


class ObjectWorker:
    """Threads for S3 work off the scheduler's thread: refreshes on their own, batched removals."""

    def __init__(
        self,
        gateway: BatchGateway,
        *,
        refresh_threads: int = REFRESH_THREADS,
        delivery_threads: int = 0,
        metrics: Metrics = GLOBAL,
    ) -> None:
        """``delivery_threads``: threads of their own for array children's deliveries (``deliver``)."""
        self._gateway = gateway
        self._metrics = metrics
        self._cond = threading.Condition()
        self._refreshes: deque[Callable[[], None]] = deque()
        self._deliveries: deque[Callable[[], None]] = deque()
        self._removals: dict[str, list[str]] = {}
        self._stopping = threading.Event()
        self._deadline: float | None = None
        self._threads = [
            SupervisedThread(
                f"batch-token-refresh-{index}",
                lambda: self._run(self._refreshes),
                self._stopping,
                metrics=metrics,
            )
            for index in range(refresh_threads)
        ]
        self._threads += [
            SupervisedThread(
                f"batch-array-delivery-{index}",
                lambda: self._run(self._deliveries),
                self._stopping,
                metrics=metrics,
            )
            for index in range(delivery_threads)
        ]
        self._threads.append(
            SupervisedThread("batch-workload-removal", self._remove, self._stopping, metrics=metrics)
        )

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def refresh(self, task: Callable[[], None]) -> None:
        """Run ``task`` (a token refresh) on a refresh thread."""
        self._queue(self._refreshes, task)

    def deliver(self, task: Callable[[], None]) -> None:
        """Run ``task`` (an array child's delivery) on a delivery thread."""
        self._queue(self._deliveries, task)

    def _queue(self, tasks: deque[Callable[[], None]], task: Callable[[], None]) -> None:
        with self._cond:
            if self._deadline is None:
                tasks.append(task)
                self._cond.notify_all()

    def remove(self, uri: str) -> None:
        """Delete the object, in a batch with others of its bucket."""
        bucket, key = split_s3_uri(uri)
        with self._cond:
            self._removals.setdefault(bucket, []).append(key)
            self._cond.notify_all()

    def stop(self, timeout: float = SHUTDOWN_SECONDS) -> None:
        """Finish queued removals for at most ``timeout`` seconds; leave the rest to the lifecycle rule."""
        with self._cond:
            self._deadline = time.monotonic() + timeout
            self._refreshes.clear()
            self._deliveries.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(max(0.0, self._deadline - time.monotonic()))
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
            left = sum(len(keys) for keys in self._removals.values())
            self._removals.clear()
        if left:
            log.warning(
                "Shutting down: %d workload object(s) not removed within %.0fs; the workload bucket's "
                "lifecycle rule removes them (their jobs are over or were revoked, so nothing reads them)",
                left,
                timeout,
            )

    def _over(self) -> bool:
        """Held: the condition's lock."""
        return self._stopping.is_set() or (self._deadline is not None and time.monotonic() >= self._deadline)

    def _run(self, tasks: deque[Callable[[], None]]) -> None:
        while True:
            with self._cond:
                while not tasks and self._deadline is None and not self._stopping.is_set():
                    self._cond.wait()
                if self._deadline is not None or self._stopping.is_set():
                    return
                task = tasks.popleft()
            task()

    def _remove(self) -> None:
        while True:
            with self._cond:
                while not self._removals and self._deadline is None and not self._stopping.is_set():
                    self._cond.wait()
                if self._over() or not self._removals:
                    return
                bucket, keys = next(iter(self._removals.items()))
                batch = keys[:DELETE_OBJECTS_MAX_KEYS]
                del keys[:DELETE_OBJECTS_MAX_KEYS]
                if not keys:
                    del self._removals[bucket]
            self._delete(bucket, batch)

    def _delete(self, bucket: str, keys: list[str]) -> None:
        try:
            failed = self._gateway.delete_objects(bucket, keys)
        except Exception as error:  # noqa: BLE001 - best effort; the bucket's lifecycle rule is the net
            failed = keys
            reason = describe_api_error(error)
        else:
            reason = "refused by S3"
        if failed:
            self._metrics.incr("workload_objects.not_removed", len(failed))
            log.warning(
                "Could not remove %d workload object(s) from s3://%s (%s), e.g. %s; the bucket's lifecycle "
                "rule will. The scheduler needs s3:DeleteObject under the workload_transport prefix.",
                len(failed),
                bucket,
                reason,
                failed[0],
            )
