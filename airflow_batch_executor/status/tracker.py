"""The job state map: which Batch job runs which workload, and what we last saw of it.

Only active jobs live here; a job leaves the map the moment its outcome is reported, so polling cost
and memory follow the number of active jobs, not the history. Entries use slots and keep their
submission (the SubmitJob request) only until the container has started: it is needed only to
resubmit a job that failed before starting.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from typing import Any

from airflow_batch_executor.job_contract import is_delivery_directory, record_object_uri
from airflow_batch_executor.records import Submission, TrackedJob, WorkloadKey
from airflow_batch_executor.rules.outcome import container_started
from airflow_batch_executor.status.reducer import progress_of


def track_submitted(
    submission: Submission, job_id: str, now: float, directory: str | None = None
) -> TrackedJob:
    """The tracked job of a submission whose SubmitJob answered with ``job_id`` (an array child's,
    with its array's delivery ``directory``)."""
    return TrackedJob(
        job_id=job_id,
        key=submission.key,
        job_name=submission.job_name,
        job_queue=submission.job_queue,
        attempt=submission.attempt,
        submitted_at=now,
        submission=submission,
        workload=submission.workload,
        heard_at=now,
        progress=progress_of({"status": "SUBMITTED"}),
        directory=directory,
    )


def observe(job: TrackedJob, record: Mapping[str, Any]) -> bool:
    """Take in what DescribeJobs says of a job; True when its status or reason changed.

    The submission is let go once any attempt's container started: a started job is never
    resubmitted (see ``rules.lifecycle``), so nothing needs its request any more. An array child's
    task starts only once its container started and its workload was delivered (whichever comes
    last), so its submission is kept until both happened (see ``JobSupervisor._on_delivered``).
    """
    status, reason = str(record.get("status")), record.get("statusReason")
    changed = (status, reason) != (job.status, job.status_reason)
    job.status, job.status_reason, job.missing_checks = status, reason, 0
    job.progress = max(job.progress or (-1, -1), progress_of(record))
    if not job.started and container_started(record):
        job.started = True
        if delivery_directory(record) is None or job.delivered_to is not None:
            job.submission = None
    return changed


def delivery_directory(record: Mapping[str, Any]) -> str | None:
    """The delivery directory an array child's command names; None for any other job."""
    uri = record_object_uri(record)
    return uri if uri is not None and is_delivery_directory(uri) else None


def _task(key: WorkloadKey) -> Hashable:
    """The task instance a key belongs to, whatever its try (callback keys stand for themselves)."""
    return getattr(key, "primary", key)


class JobTracker:
    """Indexes Batch job ids by Airflow workload key, and by task instance across tries.

    Owned by the scheduler's thread, so it has no lock: only the supervisor, whose methods run there,
    reads or changes it. The receive loops, describe threads and submit threads never touch it; they
    hand what they learn over through their ``results()``, which that thread drains.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, TrackedJob] = {}
        self._id_by_key: dict[WorkloadKey, str] = {}
        self._id_by_task: dict[Hashable, str] = {}

    def add(self, job: TrackedJob) -> None:
        previous = self._id_by_key.get(job.key)
        if previous is not None and previous != job.job_id:
            self._by_id.pop(previous, None)
        self._by_id[job.job_id] = job
        self._id_by_key[job.key] = job.job_id
        self._id_by_task[_task(job.key)] = job.job_id

    def supersede(self, key: WorkloadKey) -> TrackedJob | None:
        """Stop tracking the job of an earlier try of this task instance, once a new try is queued.

        Airflow queues try N+1 only after try N is over for it (the task reported its state), yet
        try N's job may still be winding down. Its late events would at best be ignored and at worst
        share a scheduler event batch with try N+1's, where Airflow keeps one try per task and may drop
        the newer try's job id.
        """
        job = self._by_id.get(self._id_by_task.get(_task(key), ""))
        if (
            job is None
            or job.key == key
            or getattr(job.key, "try_number", 0) >= getattr(key, "try_number", 0)
        ):
            return None
        return self.pop(job.job_id)

    def get(self, job_id: str) -> TrackedJob | None:
        return self._by_id.get(job_id)

    def for_key(self, key: WorkloadKey) -> TrackedJob | None:
        job_id = self._id_by_key.get(key)
        return self._by_id.get(job_id) if job_id is not None else None

    def pop(self, job_id: str) -> TrackedJob | None:
        job = self._by_id.pop(job_id, None)
        if job is not None and self._id_by_key.get(job.key) == job_id:
            del self._id_by_key[job.key]
        if job is not None and self._id_by_task.get(_task(job.key)) == job_id:
            del self._id_by_task[_task(job.key)]
        return job

    def job_ids(self) -> list[str]:
        return list(self._by_id)

    def quiet_job_ids(self, since: float) -> list[str]:
        """Jobs Batch has told us nothing of since ``since`` (a wall-clock time)."""
        return [job_id for job_id, job in self._by_id.items() if job.heard_at < since]

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[TrackedJob]:
        return iter(list(self._by_id.values()))
