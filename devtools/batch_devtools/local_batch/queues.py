"""Job queues of the local Batch: blocked queues, and GetJobQueueSnapshot, which moto does not implement.

AWS Batch blocks a job queue when the job at its front cannot run (a misconfigured job, capacity that
never comes): its jobs stay RUNNABLE with the cause as statusReason, each publishing a "Batch Job
Queue Blocked" event. ``Faults.block_queue`` does that on purpose; this module connects it to moto's
queues and to the jobs, so a block names a queue that exists and reaches the jobs already waiting at
once. GetJobQueueSnapshot is how a client sees which RUNNABLE jobs are at the front of a queue.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from moto.batch.exceptions import ClientException
from moto.batch.models import BatchBackend, JobQueue, batch_backends
from moto.core import DEFAULT_ACCOUNT_ID

from batch_devtools.local_batch.runtime import Runtime

if TYPE_CHECKING:
    from batch_devtools.local_batch.job import LocalJob

MAX_SNAPSHOT_JOBS = 100
"""GetJobQueueSnapshot lists the first 100 RUNNABLE jobs of a queue."""


def batch_backend(runtime: Runtime) -> BatchBackend:
    """moto's Batch backend of the local Batch's region."""
    return batch_backends[DEFAULT_ACCOUNT_ID][runtime.environment["region"]]


def find_queue(backend: BatchBackend, identifier: str) -> JobQueue:
    """The job queue of this name or ARN; a ClientException, as Batch answers, for one that does not exist."""
    queue = backend.get_job_queue(identifier) if identifier else None
    if queue is None:
        raise ClientException(f"Job queue {identifier} does not exist")
    return queue


def connect(runtime: Runtime) -> None:
    """Have the runtime's faults name queues through moto (an unknown queue is refused with a
    ValueError) and catch a queue's jobs up whenever its block changes."""

    def resolve(identifier: str) -> str:
        try:
            return find_queue(batch_backend(runtime), identifier).name
        except ClientException as err:
            raise ValueError(err.message) from err

    runtime.faults.connect_queues(resolve, lambda name: catch_up_queue(runtime, name))


def jobs_of(runtime: Runtime, name: str) -> list[LocalJob]:
    """The jobs submitted to the queue of this name (array children too, parents not), in submission order."""
    return [job for job in runtime.jobs.all() if job.array is None and job.job_queue.name == name]


def catch_up_queue(runtime: Runtime, name: str) -> None:
    """Apply the queue's block, as it now stands, to each of its unfinished jobs."""
    for job in jobs_of(runtime, name):
        if not job.finished:
            job.follow_queue_block()


def job_queue_snapshot(runtime: Runtime, identifier: str) -> dict[str, Any]:
    """GetJobQueueSnapshot's answer: the queue's RUNNABLE jobs in the order they would start, at most 100.

    The local queues are FIFO without share policies, so the job that has waited longest in RUNNABLE
    comes first (submission order among equals), with the moment it began waiting as
    ``earliestTimeAtPosition``; ``lastUpdatedAt`` is the moment of the snapshot.
    """
    queue = find_queue(batch_backend(runtime), identifier)
    waiting = []
    for job in jobs_of(runtime, queue.name):
        since = job.waiting_since()
        if since is not None:
            waiting.append({"jobArn": job.arn, "earliestTimeAtPosition": since})
    waiting.sort(key=lambda entry: entry["earliestTimeAtPosition"])
    return {"frontOfQueue": {"jobs": waiting[:MAX_SNAPSHOT_JOBS], "lastUpdatedAt": int(time.time() * 1000)}}
