"""Job status off the scheduler's thread: DescribeJobs in chunks of 100, and TerminateJob calls.

A job known only by its name (a SubmitJob whose answer was lost, for a task since revoked; a try
handed back at adoption whose job shows up late) is hunted down by name: ListJobs lists a new job
only after a delay, so the name is looked up again a few times over a few minutes, and every live
job of that name (and queueing, when known) is terminated.

Shaped like the submitter: the scheduler thread asks whether a round is ``due``, starts one with
``poll(job_ids)``, and drains finished chunks with ``results()``; the calls run on a small pool.
A round starts only when the previous one has fully come back, so a slow Batch API slows polling
down instead of piling up requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from airflow_batch_executor.aws.errors import classify_api_error, describe_api_error
from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.job_contract import DESCRIBE_JOBS_MAX_IDS, FINAL_STATUSES, record_object_uri
from airflow_batch_executor.recovery.lookup import jobs_by_id, jobs_named

DESCRIBE_THREADS = 4
NAME_CHECKS_AFTER_SECONDS = (0.0, 15.0, 60.0, 180.0)
"""When a job to be terminated by name is looked for, counted from the request."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NameHunt:
    """Terminate every live job named ``job_name`` in ``job_queue`` (of queueing ``submission`` only,
    when given), looking at each of ``due`` (monotonic times)."""

    job_queue: str
    job_name: str
    submission: str | None
    reason: str
    due: tuple[float, ...]


@dataclass(frozen=True)
class DescribedChunk:
    """The answer for one DescribeJobs call: ``records`` is None when the call failed."""

    asked: list[str]
    records: list[dict[str, Any]] | None


class StatusPoller:
    def __init__(
        self,
        gateway: BatchGateway,
        interval: float,
        threads: int = DESCRIBE_THREADS,
        forget_object: Callable[[str], None] | None = None,
    ) -> None:
        """``forget_object(uri)`` removes the workload object of a job this poller terminated."""
        self._gateway = gateway
        self._forget_object = forget_object
        self._interval = interval
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: dict[Future[list[dict[str, Any]]], list[str]] = {}
        self._next_round = 0.0
        self._hunts: list[NameHunt] = []

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="batch-describe")

    def due(self) -> bool:
        """True when the interval has passed and the previous round has fully come back."""
        return not self._in_flight and time.monotonic() >= self._next_round

    def poll(self, job_ids: Sequence[str]) -> None:
        """Start one round of DescribeJobs calls for these jobs."""
        assert self._pool is not None
        self._next_round = time.monotonic() + self._interval
        for start in range(0, len(job_ids), DESCRIBE_JOBS_MAX_IDS):
            chunk = list(job_ids[start : start + DESCRIBE_JOBS_MAX_IDS])
            self._in_flight[self._pool.submit(self._gateway.describe_jobs, chunk)] = chunk

    def results(self) -> list[DescribedChunk]:
        """Chunks answered since the last call; a failed chunk is logged and checked next round."""
        done = [future for future in self._in_flight if future.done()]
        answered = []
        for future in done:
            chunk = self._in_flight.pop(future)
            error = future.exception()
            if error is not None:
                log.warning(
                    "DescribeJobs for %d Batch jobs failed (%s): %s; they will be checked again",
                    len(chunk),
                    classify_api_error(error).value,
                    describe_api_error(error),
                )
            answered.append(DescribedChunk(chunk, None if error is not None else future.result()))
        return answered

    def terminate(self, job_id: str, reason: str) -> None:
        """TerminateJob in the background, then remove the job's workload object (read from its record:
        an adopted job's object may not be known yet); a failure is logged."""
        assert self._pool is not None
        self._pool.submit(self._stop, job_id, reason)

    def _stop(self, job_id: str, reason: str) -> None:
        try:
            self._gateway.terminate_job(job_id, reason)
        except Exception as error:  # noqa: BLE001 - the job then ends by itself or times out
            log.warning("Could not terminate Batch job %s: %s", job_id, describe_api_error(error))
        self._forget_objects([job_id])

    def _forget_objects(self, job_ids: list[str]) -> None:
        if self._forget_object is None or not job_ids:
            return
        try:
            records = jobs_by_id(self._gateway, job_ids)
        except Exception as error:  # noqa: BLE001 - the bucket's lifecycle rule is the net
            log.warning("Could not read the records of stopped Batch jobs: %s", describe_api_error(error))
            return
        for record in records.values():
            try:
                if (uri := record_object_uri(record)) is not None:
                    self._forget_object(uri)
            except Exception:
                log.exception("Could not remove the workload object of Batch job %s", record.get("jobId"))

    def terminate_by_name(
        self, job_queue: str, job_name: str, reason: str, submission: str | None = None
    ) -> None:
        """Terminate the live jobs of this name (and queueing) now and at the later checks."""
        now = time.monotonic()
        due = tuple(now + delay for delay in NAME_CHECKS_AFTER_SECONDS)
        self._hunts.append(NameHunt(job_queue, job_name, submission, reason, due))

    @property
    def hunting(self) -> int:
        return len(self._hunts)

    def hunt(self) -> None:
        """Start the name look-ups that are due (from the scheduler's thread, every heartbeat)."""
        assert self._pool is not None
        now = time.monotonic()
        later = []
        for hunt in self._hunts:
            if hunt.due[0] > now:
                later.append(hunt)
                continue
            self._pool.submit(self._hunt_once, hunt)
            if len(hunt.due) > 1:
                later.append(
                    NameHunt(hunt.job_queue, hunt.job_name, hunt.submission, hunt.reason, hunt.due[1:])
                )
        self._hunts = later

    def _hunt_once(self, hunt: NameHunt) -> None:
        try:
            found = jobs_named(self._gateway, hunt.job_queue, hunt.job_name, hunt.submission)
            for job in found:
                if job.get("status") in FINAL_STATUSES:
                    continue
                log.warning("Terminating Batch job %s (%s): %s", job["jobId"], hunt.job_name, hunt.reason)
                self._gateway.terminate_job(job["jobId"], hunt.reason)
            self._forget_objects([job["jobId"] for job in found])
        except Exception as error:  # noqa: BLE001 - the next check looks again
            log.warning(
                "Could not look for Batch jobs named %s to terminate (%s); looking again later",
                hunt.job_name,
                describe_api_error(error),
            )

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
