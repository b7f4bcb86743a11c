"""How a job is found again: by id or by its deterministic name.

A task instance whose ``external_executor_id`` holds a job id is found with DescribeJobs. One without
it may still have a job: the old scheduler can die between SubmitJob returning and the id reaching the
database. Such a job is found by its deterministic name (ListJobs with a ``JOB_NAME`` filter on the
task's queue), so the try is adopted instead of run a second time. The submitter uses the same lookup
before retrying a SubmitJob whose answer was lost, and the CLI to list a deployment's jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.job_contract import (
    DESCRIBE_JOBS_MAX_IDS,
    JOB_STATUSES,
    TAG_CONNECTION_ID,
    TAG_DAG_ID,
    TAG_SUBMISSION,
    TAG_TEAM,
    is_delivery_directory,
    record_object_uri,
    split_s3_uri,
)
from airflow_batch_executor.recovery.manifest import ArrayManifest, manifest_key
from airflow_batch_executor.requests.naming import WorkloadIdentity, array_name_prefix, team_tags

REVOKED_PREFIX = "Revoked by the Airflow scheduler"
"""How every reason the executor gives Batch when it revokes a task begins (see ``REVOKE_REASON``)."""

log = logging.getLogger(__name__)


def jobs_by_id(gateway: BatchGateway, job_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """DescribeJobs records for the ids Batch still knows, in chunks of 100."""
    ids = list(dict.fromkeys(job_ids))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), DESCRIBE_JOBS_MAX_IDS):
        for job in gateway.describe_jobs(ids[start : start + DESCRIBE_JOBS_MAX_IDS]):
            found[job["jobId"]] = job
    return found


def jobs_named(
    gateway: BatchGateway, job_queue: str, job_name: str, submission: str | None = None
) -> list[dict[str, Any]]:
    """Jobs with exactly this name, newest first, in every status but revoked.

    ``submission`` keeps only the jobs of that queueing (its ``airflow.submission`` tag, read with
    DescribeJobs): a try requeued after a revoke keeps its try number, hence its name, so the job of
    the earlier queueing is a namesake. Jobs the scheduler revoked are left out: their try was queued
    again and waits for a job of its own.
    """
    jobs = [job for job in gateway.find_jobs_by_name(job_queue, job_name) if not revoked(job)]
    if submission is not None and jobs:
        tagged = jobs_by_id(gateway, [job["jobId"] for job in jobs])
        jobs = [
            job
            for job in jobs
            if ((tagged.get(job["jobId"]) or {}).get("tags") or {}).get(TAG_SUBMISSION) == submission
        ]
    return jobs


def find_job_by_name(
    gateway: BatchGateway,
    job_queues: Sequence[str],
    job_name: str,
    *,
    live_only: bool = False,
    submission: str | None = None,
) -> dict[str, Any] | None:
    """The newest job with this exact name in any of these queues (see :func:`jobs_named`), preferring
    one that has not failed; its ``jobQueue`` is the queue it was found in.

    A task's job may be in any queue of its ``queue_fallbacks`` ladder, so every one is searched.
    ``live_only`` ignores failed jobs altogether: a job that failed before starting keeps its name
    when it is resubmitted, so a failed namesake is no proof that the current request reached Batch.
    """
    jobs = [
        {**job, "jobQueue": job_queue}
        for job_queue in dict.fromkeys(job_queues)
        for job in jobs_named(gateway, job_queue, job_name, submission)
    ]
    jobs.sort(key=lambda job: job.get("createdAt", 0), reverse=True)
    live = [job for job in jobs if job.get("status") != "FAILED"]
    return (live or ([] if live_only else jobs) or [None])[0]


def find_array_child(
    gateway: BatchGateway,
    job_queues: Sequence[str],
    identity: WorkloadIdentity,
    *,
    prefix: str | None = None,
    submission: str | None = None,
) -> str | None:
    """The id (``<array id>:<index>``) of the array child that runs this mapped try, if any array of
    its try in these queues holds it (of that queueing, when ``submission`` is given).

    The arrays of a try share the start of their name (:func:`naming.array_name_prefix`); each one's
    manifest, in the delivery directory its command names, says which child runs which instance.
    Newest array first; revoked ones are left out, as in :func:`jobs_named`. Raises when a manifest
    cannot be read (see :func:`_manifest`), like any failed call of a lookup.
    """
    pattern = f"{array_name_prefix(identity, prefix)}*"
    summaries = [
        job for queue in dict.fromkeys(job_queues) for job in gateway.list_jobs(queue, name_pattern=pattern)
    ]
    summaries.sort(key=lambda job: job.get("createdAt", 0), reverse=True)
    arrays = jobs_by_id(gateway, [job["jobId"] for job in summaries])
    for summary in summaries:
        array = arrays.get(summary["jobId"])
        directory = record_object_uri(array)
        if array is None or revoked(array) or directory is None or not is_delivery_directory(directory):
            continue
        index = _manifest(gateway, directory).child_index(identity, submission)
        if index is not None:
            return f"{array['jobId']}:{index}"
    return None


def _manifest(gateway: BatchGateway, directory: str) -> ArrayManifest:
    """The array's manifest. A read that fails raises (S3's error, or ValueError for a manifest no
    executor wrote): an array whose children cannot be told apart is never taken to hold none of them,
    which would let a try be submitted again beside its running child."""
    bucket, directory_key = split_s3_uri(directory)
    body, _ = gateway.get_object(bucket, manifest_key(directory_key))
    try:
        return ArrayManifest.from_json(body)
    except ValueError as error:
        raise ValueError(f"the array manifest in {directory} is unreadable: {error}") from error


def revoked(job: Mapping[str, Any]) -> bool:
    """Whether the scheduler terminated this job because it revoked its task (the reason says so)."""
    return str(job.get("statusReason") or "").startswith(REVOKED_PREFIX)


def deployment_jobs(
    gateway: BatchGateway,
    job_queue: str,
    prefix: str | None,
    state: str | None,
    dag_id: str | None,
    limit: int,
    team: str | None = None,
) -> list[dict[str, Any]]:
    """Jobs of this deployment in a queue, newest first: Airflow-tagged (tasks, callbacks, connection
    tests), optionally by name prefix, and of ``team``'s executor only (untagged: the global one's)."""
    if prefix:
        summaries = gateway.list_jobs(job_queue, name_pattern=f"{prefix}*")
        summaries = [job for job in summaries if not state or job.get("status") == state]
    else:
        summaries = [
            job
            for status in ([state] if state else JOB_STATUSES)
            for job in gateway.list_jobs(job_queue, status=status)
        ]
    summaries.sort(key=lambda job: job.get("createdAt", 0), reverse=True)
    described = jobs_by_id(gateway, [job["jobId"] for job in summaries])
    jobs = []
    for summary in summaries:
        job = described.get(summary["jobId"])
        tags = (job or {}).get("tags") or {}
        airflow_job = bool({TAG_DAG_ID, TAG_CONNECTION_ID} & tags.keys())
        if not airflow_job or tags.get(TAG_TEAM) != team_tags(team).get(TAG_TEAM):
            continue
        if dag_id and tags.get(TAG_DAG_ID) != dag_id:
            continue
        jobs.append(job)
        if len(jobs) >= limit:
            break
    return jobs
