"""Stopping waiting jobs that can never run their task: the orphans of a revoke or a crash.

A job whose queueing was revoked while its SubmitJob was on the wire, by a scheduler that then died
before the answer came, is known to nobody: the requeued try's job has the same name, and the job's id
never reached Airflow. In S3 mode it cannot run the task (the revoke removed its workload object, so
its bootstrap would stop at once), but it would wait for capacity, and hold it, until it started.

Every ``SWEEP_SECONDS`` the sweep lists the jobs waiting in the queues this executor submits to,
leaves alone those it tracks, and stops those of its own workload scope whose object is gone. A job
whose object exists is left alone whoever tracks it (another scheduler in HA, a submission whose
answer is still on its way). Command-mode jobs carry their workload in their command: the sweep
cannot tell an orphan there, and leaves them to ``[scheduler] task_queued_timeout`` and their token's
expiry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from botocore.exceptions import ClientError

from airflow_batch_executor.aws.errors import describe_api_error
from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.job_contract import is_delivery_directory, record_object_uri, split_s3_uri
from airflow_batch_executor.metrics import GLOBAL, Metrics
from airflow_batch_executor.options import S3Location
from airflow_batch_executor.recovery.lookup import jobs_by_id
from airflow_batch_executor.recovery.manifest import manifest_key

SWEEP_SECONDS = 60.0
SWEPT_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE")
ORPHAN_REASON = (
    "Stopped by the Airflow scheduler: its workload object is gone, so this job can never run its task "
    "(its queueing was revoked, or the scheduler that submitted it stopped)"
)

log = logging.getLogger(__name__)


class OrphanSweep:
    """Looks for orphans on its own thread, at most once per ``interval``."""

    def __init__(
        self,
        gateway: BatchGateway,
        location: S3Location,
        stop_job: Callable[[str, str], None],
        *,
        interval: float | None = None,
        metrics: Metrics = GLOBAL,
    ) -> None:
        """``stop_job(job_id, reason)`` terminates a job (in the background)."""
        self._gateway = gateway
        self._scope = (
            f"s3://{location.bucket}/{location.prefix}/" if location.prefix else f"s3://{location.bucket}/"
        )
        self._stop_job = stop_job
        self._interval = SWEEP_SECONDS if interval is None else interval
        self._metrics = metrics
        self._next = time.monotonic() + self._interval
        self._running: threading.Thread | None = None

    def tick(self, tracked: Callable[[], set[str]], queues: Iterable[str]) -> None:
        """Start a sweep when one is due and the last one is over (from the scheduler's thread)."""
        now = time.monotonic()
        if now < self._next or (self._running is not None and self._running.is_alive()):
            return
        self._next = now + self._interval
        known, names = tracked(), sorted(set(queues))
        self._running = threading.Thread(
            target=self._sweep, args=(known, names), name="batch-orphan-sweep", daemon=True
        )
        self._running.start()

    def _sweep(self, tracked: set[str], queues: list[str]) -> None:
        try:
            waiting = [
                job["jobId"]
                for queue in queues
                for status in SWEPT_STATUSES
                for job in self._gateway.list_jobs(queue, status=status)
                if job["jobId"] not in tracked
            ]
            for job_id, record in jobs_by_id(self._gateway, waiting).items():
                uri = record_object_uri(record)
                if uri is None or not uri.startswith(self._scope) or self._exists(_kept_object(uri)):
                    continue
                log.warning(
                    "Batch job %s (%s) can never run its task: stopping it", job_id, record.get("jobName")
                )
                self._metrics.incr("jobs.orphans_stopped")
                self._stop_job(job_id, ORPHAN_REASON)
        except Exception as error:  # noqa: BLE001 - the next sweep looks again
            log.warning("Could not look for orphaned Batch jobs: %s", describe_api_error(error))

    def _exists(self, uri: str) -> bool:
        try:
            self._gateway.head_object(*split_s3_uri(uri))
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True


def _kept_object(uri: str) -> str:
    """The object whose absence makes a waiting job an orphan: its workload object, or for an array
    (whose children get theirs only at start) its manifest, kept while a scheduler tracks a child."""
    return manifest_key(uri) if is_delivery_directory(uri) else uri
