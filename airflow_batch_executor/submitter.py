"""Submitting jobs off the scheduler's thread: bounded concurrency, a rate limit, retries with backoff.

The scheduler thread only enqueues submissions and drains results; worker threads make the calls.
Results go back through a queue and are turned into scheduler events by the executor, on the
scheduler's thread, so Airflow's event buffer is never touched concurrently.

A retry after an ambiguous failure (read timeout, dropped connection) first looks the job up by its
deterministic name: SubmitJob is not idempotent, and a request that did reach Batch must not become
a second job for the same task instance try.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_batch_executor import metrics
from airflow_batch_executor.adoption import find_job_by_name
from airflow_batch_executor.api_errors import ApiErrorKind, classify_api_error, describe_api_error
from airflow_batch_executor.errors import TaskConfigError
from airflow_batch_executor.gateway import BatchGateway
from airflow_batch_executor.rate_limit import RateLimiter
from airflow_batch_executor.tracker import WorkloadKey

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with full jitter before attempt ``attempt + 1`` (``attempt`` ≥ 1)."""
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)))


@dataclass(slots=True)
class Submission:
    key: WorkloadKey
    request: dict[str, Any]
    priority_weight: int | None = None
    attempt: int = 0
    maybe_submitted: bool = False

    @property
    def job_name(self) -> str:
        return self.request["jobName"]

    @property
    def job_queue(self) -> str:
        return self.request["jobQueue"]


@dataclass(frozen=True)
class SubmitResult:
    submission: Submission
    job_id: str | None = None
    error_kind: ApiErrorKind | None = None
    error: str = ""
    found_existing: bool = False


@dataclass(order=True)
class _Scheduled:
    not_before: float
    seq: int
    submission: Submission = field(compare=False)


Prepare = Callable[[Submission], dict[str, Any]]


class Submitter:
    """Worker threads that send submissions in ``not_before`` order within the rate limit.

    ``prepare`` turns a submission into the request actually sent; it may call AWS (cached
    placement lookups) and raise :class:`TaskConfigError` for a request that cannot run.
    """

    def __init__(
        self, gateway: BatchGateway, *, rate: float, concurrency: int, prepare: Prepare | None = None
    ) -> None:
        self._gateway = gateway
        self._prepare = prepare
        self.limiter = RateLimiter(rate)
        self._concurrency = concurrency
        self._heap: list[_Scheduled] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._cancelled: set[WorkloadKey] = set()
        self._in_flight = 0
        self._results: queue.SimpleQueue[SubmitResult] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self._concurrency):
            thread = threading.Thread(target=self._work, name=f"batch-submit-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def put(self, submission: Submission, delay: float = 0.0) -> None:
        with self._cond:
            self._cancelled.discard(submission.key)
            heapq.heappush(self._heap, _Scheduled(time.monotonic() + delay, next(self._seq), submission))
            self._cond.notify()

    def cancel(self, key: WorkloadKey) -> bool:
        """Drop a submission that has not been sent; True if one was waiting."""
        with self._cond:
            before = len(self._heap)
            self._heap = [item for item in self._heap if item.submission.key != key]
            heapq.heapify(self._heap)
            if len(self._heap) == before:
                self._cancelled.add(key)
                return False
            return True

    def results(self) -> list[SubmitResult]:
        drained = []
        while True:
            try:
                drained.append(self._results.get_nowait())
            except queue.Empty:
                return drained

    @property
    def pending(self) -> int:
        """Submissions waiting or in flight."""
        with self._cond:
            return len(self._heap) + self._in_flight

    def drop_waiting(self) -> list[Submission]:
        """Remove and return every submission not yet sent (scheduler shutdown)."""
        with self._cond:
            waiting = [item.submission for item in self._heap]
            self._heap = []
            return waiting

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def _next(self) -> Submission | None:
        with self._cond:
            while not self._stop.is_set():
                if self._heap:
                    wait = self._heap[0].not_before - time.monotonic()
                    if wait <= 0:
                        self._in_flight += 1
                        return heapq.heappop(self._heap).submission
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _work(self) -> None:
        while (submission := self._next()) is not None:
            try:
                with self._cond:
                    if submission.key in self._cancelled:
                        self._cancelled.discard(submission.key)
                        continue
                self._results.put(self._attempt(submission))
            finally:
                with self._cond:
                    self._in_flight -= 1

    def _attempt(self, submission: Submission) -> SubmitResult:
        submission.attempt += 1
        try:
            if submission.maybe_submitted:
                existing = find_job_by_name(self._gateway, submission.job_queue, submission.job_name, live_only=True)
                if existing is not None:
                    return SubmitResult(submission, job_id=existing["jobId"], found_existing=True)
            request = self._prepare(submission) if self._prepare else submission.request
            if not self.limiter.acquire(self._stop):
                return SubmitResult(submission, error_kind=ApiErrorKind.NETWORK, error="executor shutting down")
            started = time.monotonic()
            job_id = self._gateway.submit_job(request)
            metrics.timing("submit.latency", (time.monotonic() - started) * 1000)
            return SubmitResult(submission, job_id=job_id)
        except TaskConfigError as error:
            return SubmitResult(submission, error_kind=ApiErrorKind.REJECTED, error=str(error))
        except Exception as error:
            kind = classify_api_error(error)
            if kind is ApiErrorKind.THROTTLED:
                self.limiter.throttled()
            if kind is ApiErrorKind.AMBIGUOUS:
                submission.maybe_submitted = True
            return SubmitResult(submission, error_kind=kind, error=describe_api_error(error))
