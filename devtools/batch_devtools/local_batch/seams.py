"""The places where the local Batch hooks into moto's in-process Batch backend.

Pinned to ``moto>=5.1,<5.3``; every seam is checked at install time so a moto upgrade fails
loudly instead of silently falling back to Docker. The seams:

* ``moto.batch.models.Job`` — ``BatchBackend.submit_job`` builds jobs by looking this module
  global up at call time, so swapping it for :class:`LocalJob` makes every job submitted while
  the local Batch runs a local-process job, without copying moto's validation in ``submit_job``.
* ``BatchBackend.list_jobs`` — moto returns jobs of every status when neither ``jobStatus`` nor
  ``filters`` is given (AWS returns only RUNNING ones) and ignores all filters but JOB_NAME.
* ``BatchBackend.describe_jobs`` — moto scans (and iterates, unlocked) every job ever submitted
  per call and answers an empty id list with all jobs; AWS looks the ids up and allows 100.

The HTTP-level seam (the WSGI middleware around moto's app) lives in ``server.py``.
"""

from __future__ import annotations

import threading
from typing import Any

import moto
from moto.batch import models as batch_models
from moto.batch.exceptions import ClientException
from moto.batch.models import BatchBackend

from airflow_batch_executor.batch_facts import DESCRIBE_JOBS_MAX_IDS as MAX_DESCRIBE_JOBS
from airflow_batch_executor.batch_facts import JOB_STATUSES
from batch_devtools.local_batch.job import LocalJob

SUPPORTED_MOTO = ((5, 1), (5, 3))

_lock = threading.Lock()
_originals: dict[str, Any] = {}


def check_moto_version(version: str = moto.__version__) -> None:
    """Refuse to patch a moto whose internals these seams were not written against."""
    parts = tuple(int(piece) for piece in version.split(".")[:2] if piece.isdigit())
    low, high = SUPPORTED_MOTO
    if not low <= parts < high:
        raise RuntimeError(
            f"The local Batch patches moto internals and supports moto>=5.1,<5.3, found {version}; "
            "install a supported one: pip install 'moto[server]>=5.1,<5.3'"
        )


def install() -> None:
    """Route moto's Batch job execution and job queries through the local Batch."""
    check_moto_version()
    with _lock:
        if _originals:
            return
        _originals.update(
            Job=batch_models.Job,
            list_jobs=BatchBackend.list_jobs,
            describe_jobs=BatchBackend.describe_jobs,
        )
        batch_models.Job = LocalJob  # type: ignore[misc]
        BatchBackend.list_jobs = _list_jobs  # type: ignore[method-assign]
        BatchBackend.describe_jobs = _describe_jobs  # type: ignore[method-assign]


def uninstall() -> None:
    """Give moto its own behaviour back, e.g. for other tests that use ``mock_aws``."""
    with _lock:
        if not _originals:
            return
        batch_models.Job = _originals["Job"]  # type: ignore[misc]
        BatchBackend.list_jobs = _originals["list_jobs"]  # type: ignore[method-assign]
        BatchBackend.describe_jobs = _originals["describe_jobs"]  # type: ignore[method-assign]
        _originals.clear()


def _describe_jobs(self: BatchBackend, jobs: list[str] | None) -> list[dict[str, Any]]:
    identifiers = list(dict.fromkeys(jobs or []))
    if len(identifiers) > MAX_DESCRIBE_JOBS:
        raise ClientException(
            f"DescribeJobs accepts at most {MAX_DESCRIBE_JOBS} job ids per call, got {len(identifiers)}"
        )
    found = []
    for identifier in identifiers:
        job = self.get_job_by_id(
            identifier.rsplit("job/", 1)[-1] if identifier.startswith("arn:") else identifier
        )
        if job is not None:
            found.append(job.describe())
    return found


def _list_jobs(
    self: BatchBackend,
    job_queue_name: str | None,
    array_job_id: str | None,
    job_status: str | None = None,
    filters: list[dict[str, Any]] | None = None,
) -> list[Any]:
    if job_queue_name:
        queue = self.get_job_queue(job_queue_name)
        if queue is None:
            raise ClientException(f"Job queue {job_queue_name} does not exist")
        candidates = list(queue.jobs)
    elif array_job_id:
        parent = self.get_job_by_id(array_job_id)
        candidates = list(getattr(parent, "_child_jobs", None) or [])
    else:
        raise ClientException("ListJobs needs one of jobQueue, arrayJobId or multiNodeJobId")

    if filters:
        return [job for job in candidates if all(_matches(job, item) for item in filters)]
    status = job_status or "RUNNING"
    if status not in JOB_STATUSES:
        raise ClientException(f"jobStatus must be one of {' | '.join(JOB_STATUSES)}, got {status}")
    return [job for job in candidates if job.status == status]


def _matches(job: Any, job_filter: dict[str, Any]) -> bool:
    name = job_filter.get("name")
    values = job_filter.get("values") or []
    if name == "JOB_NAME":
        return any(_name_matches(job.job_name, value) for value in values)
    if name == "JOB_DEFINITION":
        definition = job.job_definition
        candidates = (definition.name, f"{definition.name}:{definition.revision}", definition.arn)
        return any(_name_matches(candidate, value) for value in values for candidate in candidates)
    if name in ("BEFORE_CREATED_AT", "AFTER_CREATED_AT"):
        created_at = job.describe_short()["createdAt"]
        limits = [int(value) for value in values]
        if name == "BEFORE_CREATED_AT":
            return any(created_at < limit for limit in limits)
        return any(created_at > limit for limit in limits)
    raise ClientException(
        f"Unsupported ListJobs filter {name!r}; use JOB_NAME, JOB_DEFINITION, BEFORE_CREATED_AT "
        "or AFTER_CREATED_AT"
    )


def _name_matches(actual: str, wanted: str) -> bool:
    if wanted.endswith("*"):
        return actual.lower().startswith(wanted[:-1].lower())
    return actual.lower() == wanted.lower()
