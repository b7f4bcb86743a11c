"""What must happen around each SubmitJob so the job finds its workload, and nothing is left behind.

``sign`` gives a workload a fresh token where Airflow lets the executor; ``write`` (on a submit
thread, just before SubmitJob) writes the workload object in S3 mode; ``discard`` removes the object
of a request that definitely did not become a job; ``remove_now`` removes a revoked job's object before
the scheduler goes on. ``remove_later`` and ``refresh_later`` hand work
to the object workers (:mod:`~airflow_batch_executor.workloads.objects`), never to the scheduler's heartbeat.

Which writes are conditional: the first write of a submission's object, and a rewrite for a
resubmission after its job failed before its container started, cannot meet a job that read the
object, so they are plain writes. A rewrite after a lost SubmitJob answer (a job may exist and may
have started) and every token refresh of a waiting job are made with ``If-Match`` on the ETag of the
executor's last write: when S3 refuses, a job consumed the object, and it is never written again.
"""

from __future__ import annotations

import json
import logging
import queue
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from airflow_batch_executor.airflow_side import adapter, compat
from airflow_batch_executor.aws.errors import (
    ApiErrorKind,
    classify_api_error,
    describe_api_error,
    precondition_failed,
)
from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.background import drain
from airflow_batch_executor.job_contract import array_index, split_s3_uri
from airflow_batch_executor.metrics import GLOBAL, Metrics
from airflow_batch_executor.records import WorkloadObject
from airflow_batch_executor.workloads.delivery import Delivered, Deliverer
from airflow_batch_executor.workloads.objects import DELIVERY_THREADS, SHUTDOWN_SECONDS, ObjectWorker
from airflow_batch_executor.workloads.transport import token_window

if TYPE_CHECKING:
    from airflow_batch_executor.records import Submission

REFRESH_RETRY_SECONDS = 5.0
REFRESH_RETRY_MIN_SECONDS = 0.5
"""After a failed refresh, the next try comes this long later, or sooner: within a quarter of the time
the token has left."""
_CONSUMED_CODES = frozenset({"PreconditionFailed", "NoSuchKey", "412", "404"})

log = logging.getLogger(__name__)


def _consumed(error: BaseException) -> bool:
    """True for S3's refusal of a conditional write: the object changed or is gone."""
    if not isinstance(error, ClientError):
        return False
    return str(error.response.get("Error", {}).get("Code")) in _CONSUMED_CODES


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


class WorkloadConsumed(Exception):
    """A job already read this submission's workload object: no second job may be submitted for it.

    Raised when a rewrite after a lost SubmitJob answer finds the object changed or gone. That job
    exists even if ListJobs does not show it yet, so the submission goes on looking for it by name
    (as after any lost answer) instead of submitting again.
    """

    kind = ApiErrorKind.AMBIGUOUS

    def __init__(self, uri: str) -> None:
        super().__init__(
            f"the workload object {uri} was already read by a job of this try that AWS Batch does not list "
            "yet; looking for that job instead of submitting another"
        )


@dataclass(frozen=True)
class DeliveryResult:
    """What came of delivering an array child's workload: ``delivered`` says to which attempt, or is
    None when it failed (``error``), to be asked again on the child's next record."""

    job_id: str
    task_arn: str
    delivered: Delivered | None
    error: str = ""


class WorkloadHandoff:
    """Signs, writes, refreshes and removes workload objects for one executor."""

    def __init__(
        self,
        gateway: BatchGateway,
        *,
        kms_key_id: str | None,
        generator: Any | None,
        metrics: Metrics = GLOBAL,
        arrays: bool = False,
    ) -> None:
        """``arrays``: array children's workloads are delivered here (``array_jobs``)."""
        self._gateway = gateway
        self._kms_key_id = kms_key_id
        self._generator = generator
        self._metrics = metrics
        threads = DELIVERY_THREADS if arrays else 0
        self._worker = ObjectWorker(gateway, delivery_threads=threads, metrics=metrics)
        self._deliverer = Deliverer(gateway, kms_key_id=kms_key_id)
        self._deliveries: queue.SimpleQueue[DeliveryResult] = queue.SimpleQueue()

    def start(self) -> None:
        self._worker.start()

    def stop(self, timeout: float = SHUTDOWN_SECONDS) -> None:
        self._worker.stop(timeout)

    @property
    def signs_tokens(self) -> bool:
        """Whether this Airflow lets the executor sign workload tokens (and so refresh them)."""
        return self._generator is not None

    def sign(self, workload: Any | None) -> Any | None:
        """The workload with a newly signed token; None when it cannot be re-signed here."""
        if workload is None or self._generator is None:
            return None
        return adapter.with_fresh_token(workload, self._generator)

    def write(self, submission: Submission, workload: Any, *, signed: bool) -> None:
        """Write the submission's workload object (S3 mode), just before its SubmitJob.

        A rewrite after a lost answer is conditional on the ETag of the last write. Raises
        :class:`WriteFailed` when the object cannot be written, and :class:`WorkloadConsumed` when a
        job of this submission already read it. ``signed``: the token was signed here, so its
        lifetime is known and the object can be refreshed.
        """
        obj = submission.workload
        assert obj is not None
        body = workload.model_dump_json().encode()
        with obj.lock:
            if obj.consumed:
                raise WorkloadConsumed(obj.uri)
            condition = obj.etag if submission.maybe_submitted else None
            try:
                etag = self._gateway.put_object(*obj.bucket_key, body, self._kms_key_id, if_match=condition)
            except Exception as error:
                if condition is None or not _consumed(error):
                    raise WriteFailed(obj.uri, error) from error
                if (etag := self._landed(obj, workload.token)) is None:
                    obj.consumed = True
                    raise WorkloadConsumed(obj.uri) from error
            obj.etag = etag
            obj.token_window = token_window(workload.token) if signed else None
            if obj.removed:
                self._delete_now(obj)

    def write_once(self, uri: str, body: bytes) -> None:
        """Write an object that holds no secret (an array's manifest) only where none is: a retry after
        a lost answer keeps what a job of the first attempt may already read. Raises
        :class:`WriteFailed` when it cannot be written."""
        try:
            self._gateway.put_object(*split_s3_uri(uri), body, self._kms_key_id, if_absent=True)
        except Exception as error:
            if not precondition_failed(error):
                raise WriteFailed(uri, error) from error

    def discard(self, submission: Submission) -> None:
        """Remove the object of a request that definitely did not become a job (on the submit thread)."""
        obj = submission.workload
        if obj is None:
            return
        with obj.lock:
            self._delete_now(obj)

    def _delete_now(self, obj: WorkloadObject, *, urgent: bool = False) -> None:
        """Delete while holding ``obj.lock``; a failure leaves it to the worker's batched removal."""
        try:
            self._gateway.delete_object(*obj.bucket_key, urgent=urgent)
        except Exception as error:  # noqa: BLE001 - the object worker tries again
            log.info("Could not remove %s now (%s); it is queued", obj.uri, describe_api_error(error))
            self._worker.remove(obj.uri)
        obj.etag = None

    def remove_now(self, obj: WorkloadObject | None) -> None:
        """Remove a revoked job's object before returning, with one short attempt.

        The scheduler revokes a try and requeues it with the same job name. Should it die before its
        TerminateJob lands, the revoked job waits on, unknown to the next scheduler; without its object
        that job can never run the task, and the next scheduler's orphan sweep stops it. A failed
        attempt, or a write or refresh of the object under way (it holds ``obj.lock``, and removes the
        object itself once it sees ``removed``), leaves the removal to the background.
        """
        if obj is None or obj.removed:
            return
        obj.removed = True
        if not obj.lock.acquire(blocking=False):
            self._worker.remove(obj.uri)
            return
        try:
            self._delete_now(obj, urgent=True)
        finally:
            obj.lock.release()

    def remove_later(self, obj: WorkloadObject | None) -> None:
        """Remove a job's object in the background: the job is over, or nobody wants it any more."""
        if obj is not None and not obj.removed:
            obj.removed = True
            self._worker.remove(obj.uri)

    def deliver_later(self, job_id: str, directory: str, task_arn: str, workload: Any) -> None:
        """Give the array child ``job_id``, started as ``task_arn``, its workload with a fresh token, on a
        delivery thread; :meth:`deliveries` hands the outcome back."""
        index = array_index(job_id)

        def deliver() -> None:
            try:
                signed = self.sign(workload) or workload
                body = signed.model_dump_json().encode()
                done = self._deliverer.deliver(directory, index, task_arn, body)
            except Exception as error:  # noqa: BLE001 - the child's next record asks again
                log.warning(
                    "Could not deliver the workload of Batch job %s: %s", job_id, describe_api_error(error)
                )
                self._deliveries.put(DeliveryResult(job_id, task_arn, None, describe_api_error(error)))
                return
            self._metrics.incr("arrays.delivered" if done.by_us else "arrays.delivered_elsewhere")
            self._deliveries.put(DeliveryResult(job_id, task_arn, done))

        self._worker.deliver(deliver)

    def deliveries(self) -> list[DeliveryResult]:
        """Outcomes of :meth:`deliver_later` since the last call (drained on the scheduler's thread)."""
        return drain(self._deliveries)

    def remove_uri(self, uri: str) -> None:
        """Remove the object of a job known only from its record (a job stopped by id or by name)."""
        self._worker.remove(uri)

    def refresh_later(self, obj: WorkloadObject, workload: Any | None) -> None:
        """Rewrite a waiting job's object with a new token, in the background, before any removal.

        ``workload`` is the submission's own; None for an adopted job, whose object is read first.
        """
        if self._generator is None or not obj.refresh_due(time.time()):
            return
        obj.refresh_queued = True
        self._worker.refresh(lambda: self._refresh(obj, workload))

    def _refresh(self, obj: WorkloadObject, workload: Any | None) -> None:
        try:
            with obj.lock:
                if obj.removed or obj.consumed:
                    return
                if workload is None or obj.etag is None:
                    workload = self._read(obj)
                    if workload is None or not obj.half_gone(time.time()):
                        return
                fresh = self.sign(workload)
                assert fresh is not None and obj.etag is not None
                try:
                    obj.etag = self._gateway.put_object(
                        *obj.bucket_key,
                        fresh.model_dump_json().encode(),
                        self._kms_key_id,
                        if_match=obj.etag,
                    )
                except Exception as error:
                    if not _consumed(error):
                        raise
                    if (landed := self._landed(obj, fresh.token)) is None:
                        obj.consumed = True
                        log.info(
                            "The job of %s read its workload object; its token is not refreshed", obj.uri
                        )
                        return
                    obj.etag = landed
                obj.token_window = token_window(fresh.token)
                self._metrics.incr("workload_objects.refreshed")
                log.info("Rewrote the workload object %s with a new token", obj.uri)
                if obj.removed:
                    self._delete_now(obj)
        except Exception as error:  # noqa: BLE001 - tried again soon, well before the token expires
            now = time.time()
            left = obj.token_window[1] - now if obj.token_window is not None else REFRESH_RETRY_SECONDS
            obj.retry_at = now + max(REFRESH_RETRY_MIN_SECONDS, min(REFRESH_RETRY_SECONDS, left / 4))
            log.warning("Could not rewrite the workload object %s: %s", obj.uri, describe_api_error(error))
        finally:
            obj.refresh_queued = False

    def _landed(self, obj: WorkloadObject, token: str) -> str | None:
        """The ETag of our own write when S3 refused its retry: a write whose answer was lost reached
        S3, and the client's retry of it then fails its precondition. None when the object is gone or
        holds another token: a job consumed it (held: ``obj.lock``)."""
        try:
            body, etag = self._gateway.get_object(*obj.bucket_key)
        except Exception as error:
            if _consumed(error):
                return None
            raise
        try:
            written = json.loads(body).get("token")
        except (ValueError, AttributeError):
            return None
        return etag if written == token else None

    def _read(self, obj: WorkloadObject) -> Any | None:
        """An adopted job's workload and ETag, read from its object (held: ``obj.lock``)."""
        try:
            body, obj.etag = self._gateway.get_object(*obj.bucket_key)
        except Exception as error:
            if not _consumed(error):
                raise
            obj.consumed = True
            return None
        workload = compat.parse_workload(body)
        obj.token_window = token_window(workload.token)
        return workload
