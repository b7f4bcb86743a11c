"""How a job is found again after a scheduler restart.

A task instance whose ``external_executor_id`` holds a job id is found with DescribeJobs. One without
it may still have a job: the old scheduler can die between SubmitJob returning and the id reaching the
database. Such a job is found by its deterministic name (ListJobs with a ``JOB_NAME`` filter on the
task's queue), so the try is adopted instead of run a second time. The submitter uses the same lookup
before retrying a SubmitJob whose answer was lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from airflow_batch_executor.gateway import DESCRIBE_CHUNK, BatchGateway

log = logging.getLogger(__name__)


def jobs_by_id(gateway: BatchGateway, job_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """DescribeJobs records for the ids Batch still knows, in chunks of 100."""
    ids = list(dict.fromkeys(job_ids))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), DESCRIBE_CHUNK):
        for job in gateway.describe_jobs(ids[start : start + DESCRIBE_CHUNK]):
            found[job["jobId"]] = job
    return found


def find_job_by_name(
    gateway: BatchGateway, job_queue: str, job_name: str, *, live_only: bool = False
) -> dict[str, Any] | None:
    """The newest job with this exact name, preferring one that has not failed.

    ``live_only`` ignores failed jobs altogether: a job that failed before starting keeps its name
    when it is resubmitted, so a failed namesake is no proof that the current request reached Batch.
    """
    jobs = gateway.find_jobs_by_name(job_queue, job_name)
    live = [job for job in jobs if job.get("status") != "FAILED"]
    return (live or ([] if live_only else jobs) or [None])[0]


def find_adoptable_jobs(
    gateway: BatchGateway, tis: Sequence[Any], locate: Callable[[Any], tuple[str, str]]
) -> dict[int, str]:
    """Map ``index in tis`` → job id for every task instance whose Batch job still exists.

    ``locate(ti)`` gives the (job queue, job name) the task instance's job was submitted with.
    """
    adopted: dict[int, str] = {}
    with_id = {i: ti.external_executor_id for i, ti in enumerate(tis) if ti.external_executor_id}
    known = jobs_by_id(gateway, with_id.values()) if with_id else {}
    for index, ti in enumerate(tis):
        job_id = with_id.get(index)
        if job_id in known:
            adopted[index] = job_id
            continue
        job_queue, job_name = locate(ti)
        job = find_job_by_name(gateway, job_queue, job_name)
        if job is not None:
            log.info("Found Batch job %s for %s by its name %s", job["jobId"], ti, job_name)
            adopted[index] = job["jobId"]
    return adopted
