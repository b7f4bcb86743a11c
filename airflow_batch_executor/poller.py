"""Job status off the scheduler's thread: DescribeJobs in chunks of 100, and TerminateJob calls.

Shaped like the submitter: the scheduler thread asks whether a round is ``due``, starts one with
``poll(job_ids)``, and drains finished chunks with ``results()``; the calls run on a small pool.
A round starts only when the previous one has fully come back, so a slow Batch API slows polling
down instead of piling up requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from airflow_batch_executor.aws_errors import classify_api_error, describe_api_error
from airflow_batch_executor.batch_facts import DESCRIBE_JOBS_MAX_IDS
from airflow_batch_executor.gateway import BatchGateway

DESCRIBE_THREADS = 4

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DescribedChunk:
    """The answer for one DescribeJobs call: ``records`` is None when the call failed."""

    asked: list[str]
    records: list[dict[str, Any]] | None


class StatusPoller:
    def __init__(self, gateway: BatchGateway, interval: float, threads: int = DESCRIBE_THREADS) -> None:
        self._gateway = gateway
        self._interval = interval
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: dict[Future[list[dict[str, Any]]], list[str]] = {}
        self._next_round = 0.0

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
        """TerminateJob in the background; a failure is logged (the job then ends by itself or times out)."""
        assert self._pool is not None
        future = self._pool.submit(self._gateway.terminate_job, job_id, reason)
        future.add_done_callback(
            lambda done: (
                done.exception()
                and log.warning("Could not terminate Batch job %s: %s", job_id, done.exception())
            )
        )

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
