"""WSGI middleware in front of moto's app: control endpoints, throttling, latency, SubmitJob log.

Throttling has to be real HTTP (a 429 with AWS's JSON error body) so that botocore's error
parsing and retry logic are what the executor meets, which a patched backend method cannot
give; and the control endpoints let a test in another process drive faults.

Control endpoints (JSON in, JSON out):

* ``GET    /_local_batch/faults``      — the active faults
* ``POST   /_local_batch/faults``      — add one: ``{"fault": "<Faults method>", ...kwargs}``
* ``DELETE /_local_batch/faults``      — clear all faults
* ``GET    /_local_batch/submitted``   — ``{"requests": [<SubmitJob body>, ...]}``
* ``DELETE /_local_batch/submitted``   — forget the recorded SubmitJob requests
* ``GET    /_local_batch/environment`` — names, ARNs and endpoint of the ready environment
* ``GET    /_local_batch/jobs``        — ``{"jobs": [{"jobId", "jobName", "status", "pid",
  "jobDefinition", "image"}]}``: which definition (and image) each job ran with
* ``POST   /_local_batch/jobs``        — ``{"requests": [<SubmitJob body>, ...]}`` → ``{"jobIds": [...]}``:
  load tests create thousands of jobs in one call, through moto's own ``submit_job`` (same
  validation), neither counted as API calls nor recorded as submissions, and without faults
* ``POST   /_local_batch/jobs/exit``   — ``{"jobIds": [...], "exitCode": 0}`` → ``{"stoppedAt": {<jobId>:
  <ms or null>}}``: held RUNNING jobs end now as if their container exited (null: not held or not
  RUNNING), so a load test knows when each status change happened
* ``GET    /_local_batch/calls``       — ``{"calls": {"<operation>": <count>, ...}}``, every API
  call received (throttled ones included), counted before latency and faults apply
* ``DELETE /_local_batch/calls``       — reset the counts
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from moto.batch.exceptions import ClientException
from moto.batch.models import batch_backends
from moto.core import DEFAULT_ACCOUNT_ID

from batch_devtools.local_batch.runtime import Runtime

logger = logging.getLogger(__name__)

CONTROL_PREFIX = "/_local_batch/"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def operation_of(environ: dict[str, Any]) -> str | None:
    """The API operation of a request, lower-cased: ``submitjob`` or ``getlogevents``.

    Batch is a REST API (``POST /v1/submitjob``); JSON-protocol services like CloudWatch Logs
    name the operation in ``X-Amz-Target`` (``Logs_20140328.GetLogEvents``); the object operations of
    S3 (path-style ``/bucket/key``, signed for ``s3``) are told apart by method, so latency faults and
    call counts cover the workload objects an executor writes as they cover its SubmitJob calls.
    """
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1].lower()
    path = environ.get("PATH_INFO", "")
    if path.startswith("/v1/"):
        return path[len("/v1/") :].split("/", 1)[0].lower()
    if "/s3/aws4_request" in environ.get("HTTP_AUTHORIZATION", "") and "/" in path.strip("/"):
        return _S3_OBJECT_OPERATIONS.get(environ.get("REQUEST_METHOD", ""))
    return None


_S3_OBJECT_OPERATIONS = {
    "PUT": "putobject",
    "GET": "getobject",
    "DELETE": "deleteobject",
    "HEAD": "headobject",
}


def _read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back, so moto can read it again."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _respond(
    start_response: Callable[..., Any],
    status: int,
    payload: Any,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    body = json.dumps(payload).encode()
    reason = {
        200: "OK",
        400: "Bad Request",
        404: "Not Found",
        405: "Method Not Allowed",
        429: "Too Many Requests",
    }.get(status, "Error")
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *(headers or [])],
    )
    return [body]


def _create_jobs(runtime: Runtime, requests: list[dict[str, Any]]) -> list[str]:
    """Submit these SubmitJob bodies straight to moto's backend; their job ids, in order."""
    backend = batch_backends[DEFAULT_ACCOUNT_ID][runtime.environment["region"]]
    job_ids = []
    for request in requests:
        _, job_id, _ = backend.submit_job(
            request["jobName"],
            request["jobDefinition"],
            request["jobQueue"],
            array_properties=request.get("arrayProperties") or {},
            depends_on=request.get("dependsOn"),
            container_overrides=request.get("containerOverrides"),
            timeout=request.get("timeout"),
            parameters=request.get("parameters"),
            tags=request.get("tags"),
        )
        job_ids.append(job_id)
    return job_ids


class LocalBatchMiddleware:
    """Wraps moto's WSGI app; everything that is not a control call or a fault reaches moto."""

    def __init__(self, app: WSGIApp, runtime: Runtime) -> None:
        self._app = app
        self._runtime = runtime

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self._control(environ, start_response, path[len(CONTROL_PREFIX) :].strip("/"))
        operation = operation_of(environ)
        if operation is not None:
            self._runtime.calls.count(operation)
            faults = self._runtime.faults
            delay = faults.latency_for(operation)
            if delay:
                time.sleep(delay)
            rule = faults.claim_throttle(operation)
            if rule is not None:
                logger.info("Throttling %s with %s", operation, rule.error_code)
                return _respond(
                    start_response,
                    rule.status_code,
                    {"__type": rule.error_code, "message": "Too Many Requests."},
                    [("x-amzn-ErrorType", rule.error_code), ("x-amzn-RequestId", str(uuid.uuid4()))],
                )
            if operation == "submitjob":
                self._record_submission(environ)
        return self._app(environ, start_response)

    def _record_submission(self, environ: dict[str, Any]) -> None:
        body = _read_body(environ)
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {"_unparsable_body": body.decode("utf-8", errors="replace")}
        self._runtime.submissions.record(params)

    def _control(self, environ: dict[str, Any], start_response: Callable[..., Any], name: str) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        runtime = self._runtime
        if name == "faults":
            if method == "POST":
                try:
                    runtime.faults.apply(json.loads(_read_body(environ) or b"{}"))
                except ValueError as err:
                    return _respond(start_response, 400, {"message": str(err)})
            elif method == "DELETE":
                runtime.faults.clear()
            elif method != "GET":
                return _respond(start_response, 405, {"message": "use GET, POST or DELETE"})
            return _respond(start_response, 200, runtime.faults.to_dict())
        if name == "submitted":
            if method == "DELETE":
                runtime.submissions.clear()
            return _respond(start_response, 200, {"requests": runtime.submissions.all()})
        if name == "environment":
            return _respond(start_response, 200, runtime.environment)
        if name == "jobs" and method == "POST":
            try:
                job_ids = _create_jobs(runtime, json.loads(_read_body(environ) or b"{}").get("requests", []))
            except (ValueError, KeyError, TypeError, ClientException) as err:
                return _respond(start_response, 400, {"message": f"cannot create the jobs: {err}"})
            return _respond(start_response, 200, {"jobIds": job_ids})
        if name == "jobs/exit":
            if method != "POST":
                return _respond(start_response, 405, {"message": "use POST"})
            try:
                payload = json.loads(_read_body(environ) or b"{}")
            except ValueError as err:
                return _respond(start_response, 400, {"message": f"the body is not JSON: {err}"})
            stopped = {}
            for job_id in payload.get("jobIds", []):
                job = runtime.jobs.get(job_id)
                stopped[job_id] = job.exit_now(int(payload.get("exitCode", 0))) if job is not None else None
            return _respond(start_response, 200, {"stoppedAt": stopped})
        if name == "jobs":
            jobs = [
                {
                    "jobId": job.job_id,
                    "jobName": job.job_name,
                    "status": job.status,
                    "pid": job.pid,
                    "jobDefinition": job.job_definition.arn,
                    "image": job.image,
                }
                for job in runtime.jobs.all()
            ]
            return _respond(start_response, 200, {"jobs": jobs})
        if name == "calls":
            if method == "DELETE":
                runtime.calls.clear()
            elif method != "GET":
                return _respond(start_response, 405, {"message": "use GET or DELETE"})
            return _respond(start_response, 200, {"calls": runtime.calls.all()})
        return _respond(
            start_response,
            404,
            {
                "message": f"unknown control endpoint {name!r}; "
                "use faults, submitted, environment, jobs, jobs/exit or calls"
            },
        )
