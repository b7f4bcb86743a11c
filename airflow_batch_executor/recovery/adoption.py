"""Finding the jobs of a dead scheduler's task instances, off the scheduler's thread.

``try_adopt_task_instances`` must answer at once, yet every look-up is an AWS call that may be slow,
throttled or failing. Handing a task instance back is only right when it is proven to have no job:
the scheduler then resets it and a new try runs, so a job it still has would run beside that try.

So the search runs on a small pool and the scheduler waits a few seconds for it. What is known by then
is decided: a task instance whose job was found is adopted (its job may have finished meanwhile; its
outcome is reported), one proven to have none is handed back. The others are adopted provisionally
and the search goes on, retrying with backoff until AWS answers; the supervisor then tracks the job
found, or fails the try whose job never existed, and terminates any job that appears for it later.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from typing import Any

from airflow_batch_executor.aws.errors import describe_api_error
from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.records import FoundJob, Lookup, Orphan
from airflow_batch_executor.recovery.lookup import find_array_child, find_job_by_name, jobs_by_id, revoked

SEARCH_THREADS = 4
ORPHANS_PER_LOOKUP = 10
RETRY_MIN_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0

log = logging.getLogger(__name__)


def _found(orphan: Orphan, record: dict[str, Any], queue: str | None) -> FoundJob:
    return FoundJob(
        job_id=record["jobId"],
        job_name=orphan.job_name or str(record.get("jobName", "")),
        job_queue=queue or orphan.job_queue or str(record.get("jobQueue", "")),
    )


def look_up(gateway: BatchGateway, orphans: Sequence[Orphan]) -> list[Lookup]:
    """Each orphan's job: by the id Airflow stored, else by its name, else (a mapped instance that may
    have gone in an array) by its array's manifest; raises when AWS does not answer.

    A job the scheduler revoked does not count: its try was queued again and is waiting for a job.
    When the stored id names a failed job, a newer job of the same name (its resubmission) wins.
    """
    by_id = jobs_by_id(gateway, [orphan.external_id for orphan in orphans if orphan.external_id])
    answers = []
    for orphan in orphans:
        record, queue = by_id.get(orphan.external_id or ""), None
        if record is not None and revoked(record):
            record = None
        if (record is None or record.get("status") == "FAILED") and orphan.job_queue and orphan.job_name:
            # The stored id may be stale: a job that failed before its container started is resubmitted
            # under the same name, and the dead scheduler may not have stored the new job's id yet.
            named = find_job_by_name(gateway, orphan.queues, orphan.job_name)
            if named is not None and (record is None or _newer(named, record)):
                record, queue = named, named["jobQueue"]
        if record is None and orphan.array_identity is not None:
            child = find_array_child(gateway, orphan.queues, orphan.array_identity, prefix=orphan.name_prefix)
            record = jobs_by_id(gateway, [child]).get(child) if child is not None else None
        answers.append(Lookup(orphan, _found(orphan, record, queue) if record is not None else None))
    return answers


def _newer(job: dict[str, Any], than: dict[str, Any]) -> bool:
    return job["jobId"] != than["jobId"] and job.get("createdAt", 0) >= than.get("createdAt", 0)


class AdoptionSearch:
    """Looks up orphans' jobs on its own threads; answers what it can within a wait, the rest later."""

    def __init__(self, gateway: BatchGateway, threads: int = SEARCH_THREADS) -> None:
        self._gateway = gateway
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="batch-adoption")
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._searching: dict[Hashable, Orphan] = {}
        self._answers: list[Lookup] = []

    def search(self, orphans: Sequence[Orphan], wait: float) -> tuple[list[Lookup], list[Orphan]]:
        """Look all of them up, waiting at most ``wait`` seconds: (answers, orphans still searched)."""
        with self._lock:
            self._searching.update({orphan.key: orphan for orphan in orphans})
        futures: list[Future[None]] = [
            self._pool.submit(self._look_until_answered, list(orphans[start : start + ORPHANS_PER_LOOKUP]))
            for start in range(0, len(orphans), ORPHANS_PER_LOOKUP)
        ]
        wait_for(futures, timeout=wait)
        keys = {orphan.key for orphan in orphans}
        with self._lock:
            answered = [answer for answer in self._answers if answer.orphan.key in keys]
            self._answers = [answer for answer in self._answers if answer.orphan.key not in keys]
            for answer in answered:
                self._searching.pop(answer.orphan.key, None)
            still_searched = [self._searching[key] for key in keys if key in self._searching]
        return answered, still_searched

    def results(self) -> list[Lookup]:
        """Answers that came in after their search returned."""
        with self._lock:
            answers, self._answers = self._answers, []
            for answer in answers:
                self._searching.pop(answer.orphan.key, None)
        return answers

    def cancel(self, key: Hashable) -> Orphan | None:
        """Stop searching for this task instance (revoked); its answer, come or to come, is dropped."""
        with self._lock:
            self._answers = [answer for answer in self._answers if answer.orphan.key != key]
            return self._searching.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._searching)

    def stop(self) -> None:
        self._stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _look_until_answered(self, orphans: list[Orphan]) -> None:
        pause = RETRY_MIN_SECONDS
        while not self._stopping.is_set():
            with self._lock:
                orphans = [orphan for orphan in orphans if orphan.key in self._searching]
            if not orphans:
                return
            try:
                answers = look_up(self._gateway, orphans)
            except Exception as error:  # noqa: BLE001 - AWS did not answer: ask again, never guess
                log.warning(
                    "Could not look up the Batch jobs of %d adopted task instance(s) (%s); retrying in "
                    "%.0fs. They stay adopted until AWS answers.",
                    len(orphans),
                    describe_api_error(error),
                    pause,
                )
                self._stopping.wait(pause)
                pause = min(pause * 2, RETRY_MAX_SECONDS)
                continue
            with self._lock:
                self._answers += [answer for answer in answers if answer.orphan.key in self._searching]
            return
