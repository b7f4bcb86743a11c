"""The only module that talks to AWS: Batch, CloudWatch Logs, and S3 for out-of-band workloads.

Clients come from :func:`~.clients.aws_clients` (the amazon provider's ``AwsBaseHook``, with a
team's own connection in multi-team mode). Reads (describe, list, terminate) use
botocore's standard retries — throttling, 5xx and connection errors back off with jitter. SubmitJob
is sent exactly once per call: it is not idempotent, so the submitter decides when and how to retry.

When credentials expire or disappear, the gateway builds fresh clients (with a growing pause between
rebuilds, so a broken credential source is not hammered) and the caller's retry carries on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from airflow_batch_executor.aws.clients import aws_clients
from airflow_batch_executor.aws.errors import ApiErrorKind, classify_api_error
from airflow_batch_executor.job_contract import DESCRIBE_JOBS_MAX_IDS, batch_reason

log = logging.getLogger(__name__)

RECONNECT_MIN_PAUSE = 1.0
RECONNECT_MAX_PAUSE = 60.0
DELETE_OBJECTS_MAX_KEYS = 1000
URGENT_CONFIG = Config(
    connect_timeout=2, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 1}
)
"""For calls the scheduler's thread waits on: one short attempt, the background path retries."""


def _client_config(max_attempts: int) -> Config:
    return Config(
        connect_timeout=5,
        read_timeout=20,
        max_pool_connections=32,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
    )


class BatchGateway:
    """Thread-safe access to the Batch, CloudWatch Logs and S3 APIs for one AWS connection."""

    def __init__(
        self, conn_id: str, region_name: str | None, *, team: str | None = None, read_attempts: int = 5
    ) -> None:
        self.conn_id = conn_id
        self.region_name = region_name
        self.team = team
        self._read_attempts = read_attempts
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._reconnect_pause = RECONNECT_MIN_PAUSE
        self._last_reconnect = 0.0

    def _build_clients(self) -> dict[str, Any]:
        reads = _client_config(self._read_attempts)
        wanted = {
            "batch": ("batch", reads),
            "submit": ("batch", _client_config(1)),
            "urgent": ("batch", URGENT_CONFIG),
            "logs": ("logs", reads),
            "s3": ("s3", reads),
            "urgent-s3": ("s3", URGENT_CONFIG),
        }
        return aws_clients(self.conn_id, self.region_name, wanted, self.team)

    def _client(self, name: str) -> Any:
        with self._lock:
            if not self._clients:
                self._clients = self._build_clients()
            return self._clients[name]

    def reconnect(self) -> None:
        """Drop the clients so the next call builds them with fresh credentials; rate-limited."""
        with self._lock:
            now = time.monotonic()
            if now - self._last_reconnect < self._reconnect_pause:
                return
            self._last_reconnect = now
            self._reconnect_pause = min(self._reconnect_pause * 2, RECONNECT_MAX_PAUSE)
            self._clients = {}
        log.warning(
            "AWS credentials were rejected or missing; rebuilding the AWS clients of %r", self.conn_id
        )

    def _call(self, client: str, operation: str, **kwargs: Any) -> Any:
        return self._guarded(lambda: getattr(self._client(client), operation)(**kwargs))

    def _pages(self, operation: str, key: str, **query: Any) -> list[dict[str, Any]]:
        """Every item under ``key`` of a paginated Batch answer, with the same credentials handling."""

        def read() -> list[dict[str, Any]]:
            pages = self._client("batch").get_paginator(operation).paginate(**query)
            return [item for page in pages for item in page.get(key, [])]

        return self._guarded(read)

    def _guarded(self, call: Callable[[], Any]) -> Any:
        """Make one AWS call; rejected or missing credentials have the clients rebuilt for the next."""
        try:
            result = call()
        except Exception as error:
            if classify_api_error(error) is ApiErrorKind.CREDENTIALS:
                self.reconnect()
            raise
        self._reconnect_pause = RECONNECT_MIN_PAUSE
        return result

    def submit_job(self, request: Mapping[str, Any]) -> str:
        """Send one SubmitJob request, once; returns the job id."""
        return self._call("submit", "submit_job", **request)["jobId"]

    def describe_jobs(self, job_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Describe at most 100 jobs; ids Batch no longer knows are simply absent from the answer."""
        if len(job_ids) > DESCRIBE_JOBS_MAX_IDS:
            raise ValueError(f"describe_jobs takes at most {DESCRIBE_JOBS_MAX_IDS} ids, got {len(job_ids)}")
        if not job_ids:
            return []
        return self._call("batch", "describe_jobs", jobs=list(job_ids))["jobs"]

    def terminate_job(self, job_id: str, reason: str, *, urgent: bool = False) -> None:
        """Terminate a job; a job that already finished or no longer exists is not an error.

        ``urgent`` makes one short attempt (the caller is waiting, e.g. the scheduler revoking a task).
        """
        try:
            if urgent:
                self._call("urgent", "terminate_job", jobId=job_id, reason=batch_reason(reason))
            else:
                self._call("batch", "terminate_job", jobId=job_id, reason=batch_reason(reason))
        except ClientError as error:
            if classify_api_error(error) is not ApiErrorKind.REJECTED:
                raise
            log.info("TerminateJob for Batch job %s was refused (%s); nothing to stop", job_id, error)

    def list_jobs(
        self, job_queue: str, *, status: str | None = None, name_pattern: str | None = None
    ) -> list[dict[str, Any]]:
        """Job summaries of a queue, newest first: by name pattern (every status) or by status."""
        query: dict[str, Any] = {"jobQueue": job_queue}
        if name_pattern:
            query["filters"] = [{"name": "JOB_NAME", "values": [name_pattern]}]
        elif status:
            query["jobStatus"] = status
        found = self._pages("list_jobs", "jobSummaryList", **query)
        return sorted(found, key=lambda job: job.get("createdAt", 0), reverse=True)

    def find_jobs_by_name(self, job_queue: str, job_name: str) -> list[dict[str, Any]]:
        """Jobs in the queue whose name is exactly ``job_name``, in every status (newest first)."""
        return [job for job in self.list_jobs(job_queue, name_pattern=job_name) if job["jobName"] == job_name]

    def front_of_queue(self, job_queue: str) -> list[str]:
        """ARNs of the first RUNNABLE jobs of a queue, in the order Batch will start them
        (GetJobQueueSnapshot: only the front of the queue, not every waiting job)."""
        snapshot = self._call("batch", "get_job_queue_snapshot", jobQueue=job_queue)
        return [job["jobArn"] for job in (snapshot.get("frontOfQueue") or {}).get("jobs") or []]

    def describe_job_queue(self, job_queue: str) -> dict[str, Any] | None:
        queues = self._call("batch", "describe_job_queues", jobQueues=[job_queue])["jobQueues"]
        return queues[0] if queues else None

    def describe_job_definition(self, job_definition: str) -> dict[str, Any] | None:
        """The definition a SubmitJob with this name, name:revision or ARN would use, or None."""
        if ":" in job_definition:
            found = self._call("batch", "describe_job_definitions", jobDefinitions=[job_definition])
        else:
            found = self._call(
                "batch", "describe_job_definitions", jobDefinitionName=job_definition, status="ACTIVE"
            )
        definitions = sorted(found["jobDefinitions"], key=lambda d: d.get("revision", 0), reverse=True)
        return definitions[0] if definitions else None

    def job_definitions(self, name: str | None = None, status: str = "ACTIVE") -> list[dict[str, Any]]:
        """Every revision in ``status`` of the definitions named ``name`` (of all names when None)."""
        query: dict[str, Any] = {"status": status}
        if name is not None:
            query["jobDefinitionName"] = name
        return self._pages("describe_job_definitions", "jobDefinitions", **query)

    def register_job_definition(self, request: Mapping[str, Any]) -> str:
        """Register a job definition revision, once (every call makes a new revision); returns its ARN."""
        return self._call("submit", "register_job_definition", **request)["jobDefinitionArn"]

    def tag_resource(self, arn: str, tags: Mapping[str, str]) -> None:
        self._call("batch", "tag_resource", resourceArn=arn, tags=dict(tags))

    def deregister_job_definition(self, job_definition: str) -> None:
        self._call("batch", "deregister_job_definition", jobDefinition=job_definition)

    def job_queue_names(self) -> list[str]:
        """The names of every job queue of the account and region."""
        return [queue["jobQueueName"] for queue in self._pages("describe_job_queues", "jobQueues")]

    def log_lines(self, log_group: str, log_stream: str, limit: int) -> list[str]:
        """The newest ``limit`` lines of a CloudWatch Logs stream, oldest first."""
        events = self._call(
            "logs",
            "get_log_events",
            logGroupName=log_group,
            logStreamName=log_stream,
            limit=limit,
            startFromHead=False,
        )["events"]
        return [event["message"] for event in events]

    def put_object(
        self,
        bucket: str,
        key: str,
        body: bytes,
        kms_key_id: str | None = None,
        *,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> str:
        """Write one private object, encrypted at rest (the KMS key when given, else SSE-S3); its ETag.

        With ``if_match`` S3 writes only over the object of that ETag: 412 when it changed, 404 when it
        is gone, so a write can never bring back an object someone else consumed. With ``if_absent`` it
        writes only where no object is (412 otherwise): of writers racing for one key, one wins.
        """
        if if_match and if_absent:
            raise ValueError("put_object takes if_match or if_absent, not both")
        encryption: dict[str, str] = {"ServerSideEncryption": "AES256"}
        if kms_key_id:
            encryption = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
        condition = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"} if if_absent else {}
        answer = self._call("s3", "put_object", Bucket=bucket, Key=key, Body=body, **encryption, **condition)
        return str(answer.get("ETag", ""))

    def get_object(self, bucket: str, key: str) -> tuple[bytes, str]:
        """One object's body and ETag; ClientError ``NoSuchKey`` when it does not exist."""
        answer = self._call("s3", "get_object", Bucket=bucket, Key=key)
        return answer["Body"].read(), str(answer.get("ETag", ""))

    def head_object(self, bucket: str, key: str) -> None:
        """Whether an object exists: returns, or raises ClientError 404 (NotFound) when it does not."""
        self._call("s3", "head_object", Bucket=bucket, Key=key)

    def delete_object(self, bucket: str, key: str, *, urgent: bool = False) -> None:
        """Delete one object; S3 answers a missing object with success, so this is idempotent.

        ``urgent`` makes one short attempt (the scheduler is revoking a task and waits).
        """
        self._call("urgent-s3" if urgent else "s3", "delete_object", Bucket=bucket, Key=key)

    def delete_objects(self, bucket: str, keys: Sequence[str]) -> list[str]:
        """Delete up to 1,000 objects in one call; the keys S3 could not delete (missing ones count
        as deleted)."""
        if len(keys) > DELETE_OBJECTS_MAX_KEYS:
            raise ValueError(f"delete_objects takes at most {DELETE_OBJECTS_MAX_KEYS} keys, got {len(keys)}")
        if not keys:
            return []
        answer = self._call(
            "s3",
            "delete_objects",
            Bucket=bucket,
            Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
        )
        return [str(error.get("Key")) for error in answer.get("Errors", [])]

    def bucket_region(self, bucket: str) -> str:
        """The region a bucket lives in, from HeadBucket; ClientError when it does not exist (404).

        S3 names the region even when it refuses HeadBucket (403: no s3:ListBucket, which the
        scheduler does not need otherwise), so a refusal that carries the region is an answer.
        """
        try:
            answer = self._call("s3", "head_bucket", Bucket=bucket)
        except ClientError as error:
            headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            if "x-amz-bucket-region" in headers and str(error.response.get("Error", {}).get("Code")) == "403":
                return headers["x-amz-bucket-region"]
            raise
        headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return answer.get("BucketRegion") or headers.get("x-amz-bucket-region", "")

    @property
    def region(self) -> str:
        """The region the clients were built for (the option, the connection's, or the SDK default)."""
        return self._client("batch").meta.region_name
