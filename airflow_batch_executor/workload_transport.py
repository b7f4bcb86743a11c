"""How a job receives its workload: the task to run and the token it proves itself with.

``command`` (the default) puts the workload JSON, token included, in the job's command. It needs
nothing but a queue and a job definition, but anyone who may call ``batch:DescribeJobs`` or
``batch:ListJobs``, open the Batch console, or read SubmitJob requests in an audit trail can read the
token while the job waits and use it before the job does.

With ``workload_transport = s3://bucket/prefix`` the job's command only names an object:
``python -m airflow_batch_executor.worker s3://bucket/prefix/<job name>.<nonce>.json``. The executor
writes the workload there on the submit thread just before each SubmitJob (so a failed write is
retried like a failed SubmitJob), removes it when SubmitJob definitely failed, when the job is over
and when the task is revoked, and the job's bootstrap (:mod:`airflow_batch_executor.worker`) reads
and deletes it with the job's own role. Nothing secret is left in the job's command, environment,
tags or name.

The nonce makes each submission's object its own: a task requeued after a revoke gets a new object,
so removing the revoked job's object can never delete the new one. Resubmissions of one submission
(backoff, an infrastructure failure before the container started) overwrite its object.

Where Airflow lets the executor sign workload tokens (:func:`airflow_compat.token_generator`), every
(re)submission carries a freshly signed token, and the object of a job still waiting for capacity is
rewritten with a new one once less than half of its token's lifetime is left.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow_batch_executor import airflow_compat, task_specs
from airflow_batch_executor.aws_errors import ApiErrorKind, classify_api_error, describe_api_error
from airflow_batch_executor.gateway import BatchGateway
from airflow_batch_executor.options import S3Location

if TYPE_CHECKING:
    from airflow_batch_executor.submitter import Submission
    from airflow_batch_executor.task_specs import JobSpec

WORKER_MODULE = "airflow_batch_executor.worker"
_BOOTSTRAP = ["python", "-m", WORKER_MODULE]

log = logging.getLogger(__name__)


def job_command(spec: JobSpec, job_name: str, location: S3Location | None) -> list[str]:
    """The container command of a workload's job: the Task SDK with the workload, or the bootstrap."""
    if location is None:
        return list(spec.command)
    nonce = uuid.uuid4().hex[:12]
    return [*_BOOTSTRAP, f"s3://{location.bucket}/{location.key(f'{job_name}.{nonce}.json')}"]


def object_uri(command: Any) -> str | None:
    """The ``s3://`` object a job's command fetches its workload from; None for a command-mode job."""
    if isinstance(command, list) and len(command) == len(_BOOTSTRAP) + 1 and command[:-1] == _BOOTSTRAP:
        return str(command[-1])
    return None


def request_object_uri(request: Mapping[str, Any]) -> str | None:
    return object_uri((request.get("containerOverrides") or {}).get("command"))


def record_object_uri(record: Mapping[str, Any] | None) -> str | None:
    """The object of a job as DescribeJobs shows it (adopted jobs: their submitter kept no request)."""
    return object_uri(((record or {}).get("container") or {}).get("command"))


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def token_window(token: str) -> tuple[float, float] | None:
    """(issued, expires) of a JWT, read without verifying it: only to know when to re-sign it."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["iat"]), float(claims["exp"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None


class WriteFailed(Exception):
    """Writing a workload object failed; ``kind`` says whether to retry, like a SubmitJob error."""

    def __init__(self, uri: str, cause: BaseException) -> None:
        self.kind = classify_api_error(cause)
        hint = ""
        if self.kind is ApiErrorKind.REJECTED:
            hint = (
                ". Check that the bucket exists in the executor's region and that the scheduler may call "
                "s3:PutObject on it (and kms:GenerateDataKey with [aws_batch_executor] workload_kms_key_id)"
            )
        super().__init__(f"writing the workload to {uri} failed: {describe_api_error(cause)}{hint}")


class WorkloadHandoff:
    """What must happen around each SubmitJob so the job finds its workload, and nothing is left.

    ``prepare`` and ``discard`` run on the submit threads; ``remove_later`` and ``refresh_later``
    queue work on one background thread (in order, so a rewrite queued before a removal never
    resurrects the object), never in the scheduler's heartbeat.
    """

    def __init__(self, gateway: BatchGateway, *, kms_key_id: str | None, generator: Any | None) -> None:
        self._gateway = gateway
        self._kms_key_id = kms_key_id
        self._generator = generator
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="batch-workload-objects")

    def _fresh(self, submission: Submission) -> Any | None:
        """The submission's workload with a newly signed token; None when it cannot be re-signed."""
        workload = submission.spec.workload if submission.spec is not None else None
        if workload is None or self._generator is None:
            return None
        fresh = airflow_compat.with_fresh_token(workload, self._generator)
        submission.token_window = token_window(fresh.token)
        return fresh

    def prepare(self, submission: Submission, request: dict[str, Any]) -> dict[str, Any]:
        """The request to send for this attempt, after writing its workload object (S3 mode).

        Raises :class:`WriteFailed` when the object cannot be written.
        """
        fresh = self._fresh(submission)
        uri = request_object_uri(request)
        if uri is None:
            if fresh is None:
                return request
            overrides = {**request["containerOverrides"], "command": task_specs.workload_command(fresh)}
            return {**request, "containerOverrides": overrides}
        workload = fresh if fresh is not None else submission.spec.workload if submission.spec else None
        if workload is None:
            raise ValueError(f"no workload to write to {uri}")
        try:
            self._gateway.put_object(*split_uri(uri), workload.model_dump_json().encode(), self._kms_key_id)
        except Exception as error:
            raise WriteFailed(uri, error) from error
        return request

    def discard(self, request: Mapping[str, Any]) -> None:
        """Remove the object of a request that did not become a job (on the submit thread)."""
        if (uri := request_object_uri(request)) is not None:
            self._remove(uri)

    def remove_later(self, uri: str | None) -> None:
        """Remove a job's object in the background (the job is over, or nobody wants it any more)."""
        if uri is not None:
            self._pool.submit(self._remove, uri)

    def _remove(self, uri: str) -> None:
        try:
            self._gateway.delete_object(*split_uri(uri))
        except Exception as error:  # noqa: BLE001 - best effort; the bucket's lifecycle rule is the net
            log.warning(
                "Could not remove the workload object %s (%s); the bucket's lifecycle rule will. "
                "The scheduler needs s3:DeleteObject under the workload_transport prefix.",
                uri,
                describe_api_error(error),
            )

    def refresh_due(self, submission: Submission | None, now: float) -> bool:
        """True when a waiting job's token has less than half of its lifetime left."""
        if submission is None or submission.token_window is None or submission.refreshing:
            return False
        issued, expires = submission.token_window
        return self._generator is not None and now >= issued + (expires - issued) / 2

    def refresh_later(self, submission: Submission, uri: str) -> None:
        """Rewrite a waiting job's object with a new token, in the background."""
        submission.refreshing = True
        self._pool.submit(self._refresh, submission, uri)

    def _refresh(self, submission: Submission, uri: str) -> None:
        try:
            fresh = self._fresh(submission)
            if fresh is not None:
                self._gateway.put_object(*split_uri(uri), fresh.model_dump_json().encode(), self._kms_key_id)
                log.info("Rewrote the workload object %s of %s with a new token", uri, submission.key)
        except Exception as error:  # noqa: BLE001 - tried again on the next poll
            submission.token_window = (time.time(), time.time())
            log.warning("Could not rewrite the workload object %s: %s", uri, describe_api_error(error))
        finally:
            submission.refreshing = False

    def stop(self) -> None:
        self._pool.shutdown(wait=True)
