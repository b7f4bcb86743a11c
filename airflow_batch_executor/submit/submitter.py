"""Submitting jobs off the scheduler's thread: bounded concurrency, a rate limit, retries with backoff.

The scheduler thread only enqueues submissions and drains results; worker threads make the calls.
Results go back through a queue and are turned into scheduler events by the executor, on the
scheduler's thread, so Airflow's event buffer is never touched concurrently.

The submitter decides when an attempt is made and what its result means for the rate limit; what
is sent, and how a lost answer's job is looked for, is :mod:`~airflow_batch_executor.submit.dispatch`'s.

With ``arrays`` on, a mapped instance taken off the heap takes its siblings that are due as well
(:func:`~airflow_batch_executor.submit.coalescing.take_array`), and the group costs one SubmitJob and
one rate token: each member's result carries its own child id, ``<array id>:<index>``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from airflow_batch_executor.aws.errors import ApiErrorKind, classify_api_error, describe_api_error
from airflow_batch_executor.background import SupervisedThread, drain
from airflow_batch_executor.definitions.registry import RegistryStopped
from airflow_batch_executor.errors import TaskConfigError
from airflow_batch_executor.metrics import GLOBAL, Metrics
from airflow_batch_executor.records import Submission, SubmitResult, WorkloadKey
from airflow_batch_executor.submit.coalescing import array_try, take_array
from airflow_batch_executor.submit.dispatch import Dispatch
from airflow_batch_executor.submit.rate_limit import RateLimiter
from airflow_batch_executor.workloads.handoff import WorkloadConsumed, WriteFailed

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with full jitter before attempt ``attempt + 1`` (``attempt`` ≥ 1)."""
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)))


@dataclass(order=True)
class _Scheduled:
    not_before: float
    seq: int
    submission: Submission = field(compare=False)


class Submitter:
    """Worker threads that send submissions in ``not_before`` order within the rate limit.

    Each workload key has at most one live submission. Revoking a task forgets it: a submission that
    was not sent is dropped, and the result of one already on the wire comes back not live, so the
    caller can terminate the job nobody wants any more.

    Preparing an attempt (:meth:`Dispatch.prepare`) may call AWS and raise :class:`TaskConfigError`
    for a request that cannot run; that fails the task like a rejected SubmitJob.
    """

    def __init__(
        self,
        dispatch: Dispatch,
        *,
        rate: float,
        concurrency: int,
        metrics: Metrics = GLOBAL,
        on_unwanted_job: Callable[[str], None] | None = None,
        arrays: bool = False,
    ) -> None:
        """``on_unwanted_job(job_id)`` stops a job whose submission was forgotten while its SubmitJob
        was on the wire; it runs on the submit thread the moment the answer arrives, not a heartbeat
        later: a scheduler that dies in between would leave the job to run beside the requeued try."""
        self._on_unwanted_job = on_unwanted_job
        self._arrays = arrays
        self._dispatch = dispatch
        self._metrics = metrics
        self.limiter = RateLimiter(rate)
        self._concurrency = concurrency
        self._heap: list[_Scheduled] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._cancelled: set[Submission] = set()
        self._live: dict[WorkloadKey, Submission] = {}  # touched by the scheduler's thread only
        self._in_flight = 0
        self._results: queue.SimpleQueue[SubmitResult] = queue.SimpleQueue()
        self._threads: list[SupervisedThread] = []

    def start(self) -> None:
        for index in range(self._concurrency):
            thread = SupervisedThread(f"batch-submit-{index}", self._work, self._stop, metrics=self._metrics)
            thread.start()
            self._threads.append(thread)

    def submit(self, submission: Submission, delay: float = 0.0) -> None:
        """Make this the live submission of its key and queue it (a new job, or a failed job's redo)."""
        self._live[submission.key] = submission
        self.put(submission, delay)

    def put(self, submission: Submission, delay: float = 0.0) -> None:
        """Queue a submission (again) to be sent after ``delay`` seconds."""
        with self._cond:
            self._cancelled.discard(submission)
            heapq.heappush(self._heap, _Scheduled(time.monotonic() + delay, next(self._seq), submission))
            self._cond.notify()

    def is_live(self, submission: Submission) -> bool:
        """False for a submission whose key was forgotten, or that a newer one replaced."""
        return self._live.get(submission.key) is submission

    def done(self, submission: Submission) -> None:
        """The submission ended (a job exists, or it failed for good): its key has no live one."""
        if self.is_live(submission):
            del self._live[submission.key]

    def forget(self, key: WorkloadKey) -> tuple[Submission | None, bool]:
        """Drop the key's live submission: unsent, it is never sent; in flight, its result is not live.

        Returns the submission and whether it was in flight (its result will still come back).
        """
        if (submission := self._live.pop(key, None)) is None:
            return None, False
        return submission, self._cancel(submission)

    def __len__(self) -> int:
        """Keys with a live submission: waiting, in flight, or with a result not yet handled."""
        return len(self._live)

    def _cancel(self, submission: Submission) -> bool:
        """Take the submission off the heap; True when it was not there (in flight, or its result is
        waiting to be drained)."""
        with self._cond:
            before = len(self._heap)
            self._heap = [item for item in self._heap if item.submission is not submission]
            heapq.heapify(self._heap)
            if len(self._heap) == before:
                self._cancelled.add(submission)
                return True
            return False

    def results(self) -> list[SubmitResult]:
        return drain(self._results)

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

    def _next(self) -> list[Submission] | None:
        """The next due submission, with the siblings that go with it as one array (see ``arrays``)."""
        with self._cond:
            while not self._stop.is_set():
                if self._heap:
                    now = time.monotonic()
                    wait = self._heap[0].not_before - now
                    if wait <= 0:
                        group = [heapq.heappop(self._heap).submission]
                        if self._arrays:
                            group = self._with_siblings(group[0], now)
                        self._in_flight += len(group)
                        return group
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _with_siblings(self, first: Submission, now: float) -> list[Submission]:
        """``first`` and the due submissions that may go with it as one array, taken off the heap.

        Only what is due is looked at, so nothing waits for siblings; what is not due yet (a retry's
        backoff) goes later, alone or with its own siblings. Called holding ``_cond``.
        """
        task_try = array_try(first)
        if task_try is None:
            return [first]
        due = sorted(
            item for item in self._heap if item.not_before <= now and array_try(item.submission) == task_try
        )
        group = take_array(first, (item.submission for item in due))
        if len(group) > 1:
            taken = set(group)
            self._heap = [item for item in self._heap if item.submission not in taken]
            heapq.heapify(self._heap)
        return group

    def _work(self) -> None:
        while (group := self._next()) is not None:
            try:
                with self._cond:
                    live = [submission for submission in group if submission not in self._cancelled]
                    self._cancelled.difference_update(group)
                if len(live) > 1:
                    results = self._attempt_array(live)
                else:
                    results = [self._attempt(submission) for submission in live]
                for result in results:
                    with self._cond:
                        unwanted = result.submission in self._cancelled
                    if unwanted and result.job_id and self._on_unwanted_job is not None:
                        self._on_unwanted_job(result.job_id)
                    self._results.put(result)
            finally:
                with self._cond:
                    self._cancelled.difference_update(group)
                    self._in_flight -= len(group)

    def _attempt_array(self, group: list[Submission]) -> list[SubmitResult]:
        """One SubmitJob, one rate token, for the members that Dispatch finds placed alike; each of the
        others is attempted alone, as it would have been without arrays.

        A member revoked while the group was prepared is left out of it: the rest go alone too,
        since the array request was built for them all. A lost answer marks every member: each one's
        next attempt looks for its child before anything is sent again.
        """
        try:
            if not self.limiter.acquire(self._stop):
                return [
                    SubmitResult(member, error_kind=ApiErrorKind.NETWORK, error="executor shutting down")
                    for member in group
                ]
            array, alone = self._dispatch.prepare_array(group)
        except Exception as error:  # noqa: BLE001 - every failure becomes a result for each member
            return [self._failed(member, error) for member in group]
        if array is None:
            return [self._attempt(member) for member in alone]
        members = [member for member in group if member not in alone]
        with self._cond:
            revoked = [member for member in members if member in self._cancelled]
        if revoked:
            return [
                SubmitResult(member, error_kind=ApiErrorKind.REJECTED, error="revoked before sending")
                for member in revoked
            ] + [self._attempt(member) for member in group if member not in revoked]
        for member in members:
            member.attempt += 1
        try:
            array_id = self._dispatch.send_array(array)
        except Exception as error:  # noqa: BLE001 - every failure becomes a result for each member
            results = [self._failed(member, error) for member in members]
        else:
            self._metrics.incr("arrays.submitted")
            self._metrics.incr("arrays.children", len(members))
            results = [
                SubmitResult(member, job_id=f"{array_id}:{index}", array_directory=array.directory)
                for index, member in enumerate(members)
            ]
        return results + [self._attempt(member) for member in alone]

    def _failed(self, submission: Submission, error: Exception) -> SubmitResult:
        """The result of an attempt that raised: its class decides the retry, and a lost answer marks
        the submission, so its next attempt first looks for the job that answer may have made."""
        if isinstance(error, (WriteFailed, WorkloadConsumed)):
            if error.kind is ApiErrorKind.THROTTLED:
                self.limiter.throttled()
            return SubmitResult(submission, error_kind=error.kind, error=str(error))
        if isinstance(error, TaskConfigError):
            return SubmitResult(submission, error_kind=ApiErrorKind.REJECTED, error=str(error))
        if isinstance(error, RegistryStopped):
            return SubmitResult(submission, error_kind=ApiErrorKind.NETWORK, error=str(error))
        kind = classify_api_error(error)
        if kind is ApiErrorKind.THROTTLED:
            self.limiter.throttled()
        if kind is ApiErrorKind.AMBIGUOUS:
            submission.maybe_submitted = True
        return SubmitResult(submission, error_kind=kind, error=describe_api_error(error))

    def _attempt(self, submission: Submission) -> SubmitResult:
        if not submission.look_up_only:
            submission.attempt += 1
        try:
            if submission.maybe_submitted and (job_id := self._dispatch.find_sent(submission)):
                return SubmitResult(submission, job_id=job_id, found_existing=True)
            if submission.look_up_only:
                submission.look_ups += 1
                return SubmitResult(
                    submission, error_kind=ApiErrorKind.AMBIGUOUS, error="no job of this try listed yet"
                )
            if not self.limiter.acquire(self._stop):
                return SubmitResult(
                    submission, error_kind=ApiErrorKind.NETWORK, error="executor shutting down"
                )
            request = self._dispatch.prepare(submission)
            with self._cond:
                forgotten = submission in self._cancelled
            if forgotten:  # revoked while its object was written: no job at all is better than one stopped
                self._dispatch.withdraw(submission)
                return SubmitResult(
                    submission, error_kind=ApiErrorKind.REJECTED, error="revoked before sending"
                )
            return SubmitResult(submission, job_id=self._dispatch.send(submission, request))
        except Exception as error:  # noqa: BLE001 - every failure becomes a result for its task
            return self._failed(submission, error)
