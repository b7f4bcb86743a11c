"""The places where the local Batch hooks into moto's in-process Batch backend.

Pinned to ``moto>=5.1,<5.3``; every seam is checked at install time so a moto upgrade fails
loudly instead of silently falling back to Docker. The seams:

* ``moto.batch.models.Job`` — ``BatchBackend.submit_job`` builds jobs by looking this module
  global up at call time, so swapping it for :class:`LocalJob` makes every job submitted while
  the local Batch runs a local-process job, without copying moto's validation in ``submit_job``.
* ``BatchBackend.list_jobs`` — moto returns jobs of every status when neither ``jobStatus`` nor
  ``filters`` is given (AWS returns only RUNNING ones), ignores all filters but JOB_NAME, and lists an
  array's children with the jobs of their queue (AWS lists them only by ``arrayJobId``).
* ``BatchBackend.describe_jobs`` — moto scans (and iterates, unlocked) every job ever submitted
  per call and answers an empty id list with all jobs; AWS looks the ids up and allows 100. Jobs a
  ``vanish`` fault made disappear are left out here and in ``list_jobs``.
* ``BatchBackend.submit_job`` — moto accepts a deregistered (INACTIVE) job definition revision and
  resolves a bare name to its latest revision, INACTIVE or not; AWS refuses the first and resolves a
  name to its latest ACTIVE revision. moto also takes any array size; AWS takes 2 to 10,000.
* ``BatchBackend.cancel_job`` — on an array's parent, moto's would terminate every child, running ones
  too; AWS cancels only the children that have not started.
* ``BatchResponse.submitjob`` (``submit_job`` from moto 5.2.6) — moto drops the request's
  ``retryStrategy``; it is handed to the job through
  :func:`~batch_devtools.local_batch.job.submission_options`.
* ``SQSBackend.is_message_valid_based_on_retention_period`` — moto computes every attribute of the
  queue (each one a scan of all its messages) three times for every message ReceiveMessage hands
  out, only to read its retention period: with a few thousand status events queued, receiving them
  takes most of the process's CPU. Here the retention period is read directly.

The HTTP-level seam (the WSGI middleware around moto's app) lives in ``server.py``.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

import moto
from moto.batch import models as batch_models
from moto.batch.exceptions import ClientException
from moto.batch.models import BatchBackend, JobDefinition
from moto.batch.responses import BatchResponse
from moto.core.utils import unix_time
from moto.sqs.models import Message, SQSBackend

from airflow_batch_executor.job_contract import DESCRIBE_JOBS_MAX_IDS as MAX_DESCRIBE_JOBS
from airflow_batch_executor.job_contract import JOB_STATUSES
from batch_devtools.local_batch.array import validate_size
from batch_devtools.local_batch.faults import job_subject
from batch_devtools.local_batch.job import LocalJob, submission_options
from batch_devtools.local_batch.queues import find_queue
from batch_devtools.local_batch.runtime import HOLD, active_runtime

SUPPORTED_MOTO = ((5, 1), (5, 3))

_RESPONSE_SUBMIT_JOB = "submit_job" if hasattr(BatchResponse, "submit_job") else "submitjob"
"""The SubmitJob handler of moto's Batch responses: ``submitjob`` up to 5.2.5, ``submit_job`` since."""
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
            submit_job=BatchBackend.submit_job,
            cancel_job=BatchBackend.cancel_job,
            response_submit_job=getattr(BatchResponse, _RESPONSE_SUBMIT_JOB),
            retention=SQSBackend.is_message_valid_based_on_retention_period,
        )
        batch_models.Job = LocalJob  # type: ignore[misc]
        BatchBackend.list_jobs = _list_jobs  # type: ignore[method-assign]
        BatchBackend.describe_jobs = _describe_jobs  # type: ignore[method-assign]
        BatchBackend.submit_job = _submit_job  # type: ignore[method-assign]
        BatchBackend.cancel_job = _cancel_job  # type: ignore[method-assign]
        setattr(BatchResponse, _RESPONSE_SUBMIT_JOB, _response_submit_job)
        SQSBackend.is_message_valid_based_on_retention_period = _within_retention  # type: ignore[method-assign]


def uninstall() -> None:
    """Give moto its own behaviour back, e.g. for other tests that use ``mock_aws``."""
    with _lock:
        if not _originals:
            return
        batch_models.Job = _originals["Job"]  # type: ignore[misc]
        BatchBackend.list_jobs = _originals["list_jobs"]  # type: ignore[method-assign]
        BatchBackend.describe_jobs = _originals["describe_jobs"]  # type: ignore[method-assign]
        BatchBackend.submit_job = _originals["submit_job"]  # type: ignore[method-assign]
        BatchBackend.cancel_job = _originals["cancel_job"]  # type: ignore[method-assign]
        setattr(BatchResponse, _RESPONSE_SUBMIT_JOB, _originals["response_submit_job"])
        SQSBackend.is_message_valid_based_on_retention_period = _originals["retention"]  # type: ignore[method-assign]
        _originals.clear()


def _within_retention(self: SQSBackend, queue_name: str, message: Message) -> bool:
    """Whether the message is younger than its queue's retention period (as moto decides it)."""
    retention = int(self.get_queue(queue_name).message_retention_period)
    return retention + message.sent_timestamp / 1000 > unix_time()  # type: ignore[operator]


def _response_submit_job(self: BatchResponse) -> str:
    with submission_options(retry_strategy=self._get_param("retryStrategy")):
        return _originals["response_submit_job"](self)


def _submit_job(
    self: BatchBackend,
    job_name: str,
    job_def_id: str,
    job_queue: str,
    array_properties: dict[str, int],
    *args: Any,
    **kwargs: Any,
) -> tuple[str, str, str]:
    definition = active_job_definition(self, job_def_id)
    validate_size(array_properties)
    size = (array_properties or {}).get("size", 0)
    subjects = itertools.chain([job_name], (job_subject(job_name, index) for index in range(size)))
    runtime = active_runtime()
    if runtime.settings.job_mode == HOLD and any(map(runtime.faults.retry_after_start_matches, subjects)):
        raise ClientException(
            f"local Batch: a retry_after_start fault matches job {job_name!r}, but hold mode runs one "
            "attempt per job; use job_mode 'process' or 'inline' for Batch retries, or clear the fault"
        )
    with submission_options(job_queue=job_queue, job_definition=job_def_id):
        return _originals["submit_job"](
            self, job_name, definition.arn, job_queue, array_properties, *args, **kwargs
        )


def _cancel_job(self: BatchBackend, job_id: str, reason: str) -> None:
    job = self.get_job_by_id(job_id) if job_id and reason else None
    if isinstance(job, LocalJob) and job.array is not None:
        job.stop_children(reason, started_too=False)
        return
    _originals["cancel_job"](self, job_id, reason)


def active_job_definition(backend: BatchBackend, identifier: str) -> JobDefinition:
    """The job definition SubmitJob runs, as AWS resolves it: an ARN or ``name:revision`` must name
    an ACTIVE revision; a bare name means its latest ACTIVE revision."""
    if ":" in identifier:
        try:
            definition = backend.get_job_definition(identifier)
        except ValueError:  # moto reads what follows the first ":" of an unknown ARN as a revision
            definition = None
        if definition is None:
            raise ClientException(f"Job definition {identifier} does not exist")
        if definition.status != "ACTIVE":
            raise ClientException(f"JobDefinition {definition.arn} is not in ACTIVE status")
        return definition
    active = [
        definition
        for definition in backend._job_definitions.values()
        if definition.name == identifier and definition.status == "ACTIVE"
    ]
    if not active:
        raise ClientException(f"JobDefinition name {identifier} does not exist or is not in ACTIVE status")
    return max(active, key=lambda definition: definition.revision)


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
        if job is not None and not getattr(job, "vanished", False):
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
        queue = find_queue(self, job_queue_name)
        candidates = [job for job in queue.jobs if getattr(job, "array_index", None) is None]
    elif array_job_id:
        parent = self.get_job_by_id(array_job_id)
        array = getattr(parent, "array", None)
        candidates = list(array.children) if array is not None else []
    else:
        raise ClientException("ListJobs needs one of jobQueue, arrayJobId or multiNodeJobId")

    candidates = [job for job in candidates if not getattr(job, "vanished", False)]
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
