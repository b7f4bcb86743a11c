"""How many jobs of a task instance's earlier tries Spot reclaimed, per queue.

The ``queue_fallbacks`` ladder (:mod:`~airflow_batch_executor.requests.queue_ladder`) needs this count
when a new try of a task instance is submitted. No memory has to survive a scheduler restart for it:
each try's jobs carry the try's deterministic name, so ListJobs on each queue of the ladder finds them
again (for as long as Batch keeps finished jobs, at least a week). Runs on the submit threads.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace

from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.job_contract import FINAL_STATUSES
from airflow_batch_executor.requests.naming import WorkloadIdentity, job_name
from airflow_batch_executor.requests.queue_ladder import QueueChoice, QueueLadder
from airflow_batch_executor.rules.outcome import reclaimed_host

MAX_CACHED = 20_000
"""Answers kept (one per queue and earlier try); beyond this the cache starts afresh."""


class ReclaimHistory:
    """Counts reclaimed jobs of earlier tries by their names; an answer about jobs that are all over
    never changes, so it is cached."""

    def __init__(self, gateway: BatchGateway, ladder: QueueLadder, name_prefix: str | None) -> None:
        self._gateway = gateway
        self._ladder = ladder
        self._prefix = name_prefix
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], int] = {}

    def queue_for(
        self, identity: WorkloadIdentity, queue: str, this_try: Mapping[str, int] | None = None
    ) -> tuple[QueueChoice, Counter[str]]:
        """Where the ladder sends the next job of ``identity``'s try routed to ``queue``, and the
        reclaims that decided it: those of earlier tries, and ``this_try``'s (counted in memory)."""
        reclaims = self.earlier_tries(identity, queue) + Counter(this_try or {})
        return self._ladder.choose(queue, reclaims), reclaims

    def earlier_tries(self, identity: WorkloadIdentity, queue: str) -> Counter[str]:
        """Reclaimed jobs of tries before ``identity``'s, per queue of ``queue``'s ladder."""
        counts: Counter[str] = Counter()
        if not self._ladder.has_fallback(queue):
            return counts
        for try_number in range(1, identity.try_number):
            name = job_name(replace(identity, try_number=try_number), self._prefix)
            for rung in self._ladder.chain(queue):
                counts[rung] += self._reclaimed(rung, name)
        return +counts

    def _reclaimed(self, queue: str, name: str) -> int:
        with self._lock:
            cached = self._cache.get((queue, name))
        if cached is not None:
            return cached
        jobs = self._gateway.find_jobs_by_name(queue, name)
        count = sum(1 for job in jobs if reclaimed_host(job) is not None)
        if all(job.get("status") in FINAL_STATUSES for job in jobs):
            with self._lock:
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
                self._cache[(queue, name)] = count
        return count
