"""WSGI middleware in front of moto's app: control endpoints, faults by operation, the history, and
GetJobQueueSnapshot (``POST /v1/getjobqueuesnapshot``), which moto does not implement.

Throttling has to be real HTTP (an error in the shape each protocol answers with) so that botocore's
error parsing and retry logic are what the executor meets, which a patched backend method cannot
give; and the control endpoints let a test in another process drive faults. Workload objects are
recorded here because only the HTTP layer sees a PutObject's conditional headers and S3's verdict.

Control endpoints (JSON in, JSON out):

* ``GET    /_local_batch/faults``      — the active faults
* ``POST   /_local_batch/faults``      — add one: ``{"fault": "<Faults method>", ...kwargs}``
* ``DELETE /_local_batch/faults``      — clear all faults
* ``GET    /_local_batch/submitted``   — ``{"requests": [<SubmitJob body>, ...]}``
* ``DELETE /_local_batch/submitted``   — forget the recorded SubmitJob requests
* ``GET    /_local_batch/environment`` — names, ARNs and endpoint of the ready environment
* ``GET    /_local_batch/jobs``        — ``{"jobs": [{"jobId", "jobName", "status", "pid",
  "jobDefinition", "image", "vanished"}]}``: which definition (and image) each job ran with
* ``POST   /_local_batch/jobs``        — ``{"requests": [<SubmitJob body>, ...]}`` → ``{"jobIds": [...]}``:
  load tests create thousands of jobs in one call, through moto's own ``submit_job`` (same
  validation), neither counted as API calls nor recorded as submissions, and without faults
* ``POST   /_local_batch/jobs/exit``   — ``{"jobIds": [...], "exitCode": 0}`` → ``{"stoppedAt": {<jobId>:
  <ms or null>}}``: held RUNNING jobs end now as if their container exited (null: not held or not
  RUNNING), so a load test knows when each status change happened
* ``POST   /_local_batch/jobs/vanish`` — ``{"jobIds": [...]}`` → ``{"vanished": {<jobId>: true|false}}``:
  finished jobs disappear from DescribeJobs and ListJobs now (false: unknown or not finished)
* ``GET    /_local_batch/calls``       — ``{"calls": {"<operation>": <count>, ...}}``, every API
  call received (throttled ones included), counted before latency and faults apply
* ``DELETE /_local_batch/calls``       — reset the counts
* ``GET    /_local_batch/history``     — ``{"history": [{"event", "at", ...}, ...]}`` (see the README)
* ``DELETE /_local_batch/history``     — forget it
* ``GET    /_local_batch/workload-tokens`` — ``{"tokens": [...]}``: every token seen in a PutObject body
* ``DELETE /_local_batch/workload-tokens`` — forget them
* ``GET    /_local_batch/ecs-metadata/<id>[/task]`` — the task metadata endpoint (v4) of a job's container,
  ``ECS_CONTAINER_METADATA_URI_V4`` in its environment: the container's metadata, or with ``/task`` its
  task's; 404 for an id of no attempt under way (see ``ecs.py``)
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from moto.batch.exceptions import ClientException
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.exceptions import MissingBucket
from moto.s3.models import s3_backends

from batch_devtools.local_batch.ecs import METADATA_ROUTE
from batch_devtools.local_batch.job import submission_options
from batch_devtools.local_batch.queues import batch_backend, job_queue_snapshot
from batch_devtools.local_batch.runtime import Runtime

logger = logging.getLogger(__name__)

CONTROL_PREFIX = "/_local_batch/"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
REST_JSON, JSON, QUERY, S3 = "rest-json", "json", "query", "s3"
S3_PARTITION = "aws"
MAX_INSPECTED_BODY = 1024 * 1024
"""PutObject bodies up to this size are searched for a workload token."""


@dataclass(frozen=True)
class Call:
    """One AWS API request: its lower-cased operation, its protocol and, for S3, bucket and key."""

    operation: str
    protocol: str
    bucket: str | None = None
    key: str | None = None


def classify(environ: dict[str, Any]) -> Call | None:
    """The API call a request makes; None for what is no AWS API call (moto's own endpoints).

    Batch is a REST API (``POST /v1/submitjob``); JSON-protocol services (CloudWatch Logs, SQS) name the
    operation in ``X-Amz-Target`` (``AmazonSQS.ReceiveMessage``); query-protocol ones in ``Action=``
    (query string or form body); S3 requests (path-style ``/bucket/key``, signed for ``s3``) are
    told apart by method, path and sub-resource, so faults and call counts cover the workload objects
    an executor writes as they cover its SubmitJob calls.
    """
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return Call(target.rsplit(".", 1)[-1].lower(), JSON)
    path = environ.get("PATH_INFO", "")
    if path.startswith("/v1/"):
        return Call(path[len("/v1/") :].split("/", 1)[0].lower(), REST_JSON)
    if _signed_for_s3(environ):
        return _s3_call(environ)
    action = _query_action(environ)
    if action:
        return Call(action.lower(), QUERY)
    return None


def operation_of(environ: dict[str, Any]) -> str | None:
    """The API operation of a request, lower-cased: ``submitjob``, ``putobject``, ``receivemessage``."""
    call = classify(environ)
    return call.operation if call is not None else None


def _signed_for_s3(environ: dict[str, Any]) -> bool:
    if "/s3/aws4_request" in environ.get("HTTP_AUTHORIZATION", ""):
        return True
    return "/s3/aws4_request" in urllib.parse.unquote(environ.get("QUERY_STRING", ""))


_BUCKET_SUBRESOURCES = {
    "lifecycle": "bucketlifecycleconfiguration",
    "policy": "bucketpolicy",
    "tagging": "buckettagging",
    "versioning": "bucketversioning",
    "encryption": "bucketencryption",
    "acl": "bucketacl",
    "cors": "bucketcors",
    "notification": "bucketnotificationconfiguration",
    "location": "bucketlocation",
}
_VERBS = {"GET": "get", "PUT": "put", "DELETE": "delete"}


def _s3_call(environ: dict[str, Any]) -> Call:
    method = environ.get("REQUEST_METHOD", "GET")
    bucket, _, key = environ.get("PATH_INFO", "").lstrip("/").partition("/")
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if not bucket:
        return Call("listbuckets", S3)
    if key:
        return Call(_s3_object_operation(method, query, environ), S3, bucket, key)
    return Call(_s3_bucket_operation(method, query), S3, bucket)


def _s3_object_operation(method: str, query: dict[str, list[str]], environ: dict[str, Any]) -> str:
    if method == "PUT":
        if "HTTP_X_AMZ_COPY_SOURCE" in environ:
            return "copyobject"
        if "partNumber" in query:
            return "uploadpart"
        return "putobjecttagging" if "tagging" in query else "putobject"
    if method == "GET":
        return "getobjecttagging" if "tagging" in query else "getobject"
    if method == "HEAD":
        return "headobject"
    if method == "DELETE":
        return "abortmultipartupload" if "uploadId" in query else "deleteobject"
    if "uploads" in query:
        return "createmultipartupload"
    return "completemultipartupload" if "uploadId" in query else "postobject"


def _s3_bucket_operation(method: str, query: dict[str, list[str]]) -> str:
    if method == "HEAD":
        return "headbucket"
    if method == "POST":
        return "deleteobjects" if "delete" in query else "postbucket"
    verb = _VERBS.get(method, method.lower())
    for subresource, name in _BUCKET_SUBRESOURCES.items():
        if subresource in query:
            return verb + name
    if method == "GET":
        return "listobjectsv2" if query.get("list-type") == ["2"] else "listobjects"
    return {"PUT": "createbucket", "DELETE": "deletebucket"}.get(method, verb + "bucket")


def _query_action(environ: dict[str, Any]) -> str | None:
    """``Action=`` of a query-protocol request, from the query string or a form-encoded body."""
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        return query["Action"][0]
    if environ.get("REQUEST_METHOD") == "POST" and environ.get("CONTENT_TYPE", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        form = urllib.parse.parse_qs(_read_body(environ).decode("utf-8", errors="replace"))
        if "Action" in form:
            return form["Action"][0]
    return None


def _read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back, so moto can read it again."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ["wsgi.input"]
    if length:
        body = stream.read(length)
    elif environ.get("wsgi.input_terminated"):  # chunked transfer: the server ends the stream
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _decoded_s3_body(environ: dict[str, Any], body: bytes) -> bytes:
    """The object's bytes of a PutObject body, undoing ``aws-chunked`` content encoding."""
    streaming = environ.get("HTTP_X_AMZ_CONTENT_SHA256", "").startswith("STREAMING-")
    if "aws-chunked" not in environ.get("HTTP_CONTENT_ENCODING", "") and not streaming:
        return body
    data, position = bytearray(), 0
    while position < len(body):
        line_end = body.find(b"\r\n", position)
        if line_end < 0:
            break
        size = int(body[position:line_end].split(b";", 1)[0] or b"0", 16)
        if size == 0:
            break
        data += body[line_end + 2 : line_end + 2 + size]
        position = line_end + 2 + size + 2
    return bytes(data)


def _top_level_token(body: bytes) -> str | None:
    if not body or len(body) > MAX_INSPECTED_BODY or not body.lstrip().startswith(b"{"):
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    token = document.get("token") if isinstance(document, dict) else None
    return token if isinstance(token, str) else None


def _object_exists(bucket: str, key: str) -> bool:
    try:
        return s3_backends[DEFAULT_ACCOUNT_ID][S3_PARTITION].get_object(bucket, key) is not None
    except MissingBucket:
        return False


def _keys_to_delete(body: bytes) -> list[str]:
    """The keys of a DeleteObjects request body."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return []
    return [element.text or "" for element in root.iter() if element.tag.rsplit("}", 1)[-1] == "Key"]


_ERROR_MESSAGES = {
    "SlowDown": "Please reduce your request rate.",
    "InternalError": "We encountered an internal error. Please try again.",
    "ServiceUnavailable": "Please reduce your request rate.",
    "TooManyRequestsException": "Too Many Requests.",
}
_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _error(start_response: Callable[..., Any], call: Call, code: str, status: int) -> list[bytes]:
    """An injected error in the shape the call's protocol answers with, so botocore parses it as AWS's."""
    message = _ERROR_MESSAGES.get(code, f"{code} (injected by the local Batch)")
    request_id = str(uuid.uuid4())
    if call.protocol == S3:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>local-batch</HostId></Error>"
        ).encode()
        headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
    elif call.protocol == QUERY:
        body = (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message><Detail/></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    elif call.protocol == JSON:
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-query-error", f"{code};Sender"),
        ]
    else:
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("x-amzn-ErrorType", code),
            ("x-amzn-RequestId", request_id),
        ]
    start_response(
        f"{status} {_REASONS.get(status, 'Error')}", [*headers, ("Content-Length", str(len(body)))]
    )
    return [body]


def _respond(
    start_response: Callable[..., Any],
    status: int,
    payload: Any,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(
        f"{status} {_REASONS.get(status, 'Error')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *(headers or [])],
    )
    return [body]


def _client_error(start_response: Callable[..., Any], message: str) -> list[bytes]:
    """A Batch ``ClientException`` (HTTP 400), shaped as moto and AWS answer one."""
    return _respond(
        start_response,
        400,
        {"__type": "ClientException", "message": message},
        [("x-amzn-ErrorType", "ClientException")],
    )


def _create_jobs(runtime: Runtime, requests: list[dict[str, Any]]) -> list[str]:
    """Submit these SubmitJob bodies straight to moto's backend; their job ids, in order."""
    backend = batch_backend(runtime)
    job_ids = []
    for request in requests:
        with submission_options(retry_strategy=request.get("retryStrategy")):
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


_RECORDED_S3 = frozenset({"putobject", "getobject", "deleteobject", "deleteobjects"})


class LocalBatchMiddleware:
    """Wraps moto's WSGI app; everything that is not a control call or a fault reaches moto."""

    def __init__(self, app: WSGIApp, runtime: Runtime) -> None:
        self._app = app
        self._runtime = runtime
        self._deletes = threading.Lock()
        """Held while a removal is looked up and done, so "found" is what that removal found."""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self._control(environ, start_response, path[len(CONTROL_PREFIX) :].strip("/"))
        call = classify(environ)
        if call is None:
            return self._app(environ, start_response)
        self._runtime.calls.count(call.operation)
        faults = self._runtime.faults
        delay = faults.latency_for(call.operation)
        if delay:
            time.sleep(delay)
        rule = faults.claim_throttle(call.operation)
        if rule is not None:
            code, status = rule.answer(s3=call.protocol == S3)
            logger.info("Answering %s with %s (%s)", call.operation, code, status)
            return _error(start_response, call, code, status)
        if call.operation == "getjobqueuesnapshot":
            return self._job_queue_snapshot(environ, start_response)
        if call.operation == "submitjob":
            self._record_submission(environ)
        if call.protocol == S3 and call.operation in _RECORDED_S3:
            return self._recorded_s3_call(environ, start_response, call)
        return self._app(environ, start_response)

    def _recorded_s3_call(
        self, environ: dict[str, Any], start_response: Callable[..., Any], call: Call
    ) -> Iterable[bytes]:
        """Pass a workload-object call on to moto and record what S3 did with it in the history."""
        history = self._runtime.history
        answer: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            answer["status"] = int(status.split(" ", 1)[0])
            answer["headers"] = {name.lower(): value for name, value in headers}
            return start_response(status, headers, *exc_info)

        bucket, key = call.bucket or "", call.key or ""
        if call.operation == "putobject":
            body = _decoded_s3_body(environ, _read_body(environ))
            token = _top_level_token(body)
            if token is not None:
                history.add_token(token)
            result = self._answer(environ, capture, answer)
            status = answer.get("status", 0)
            history.record(
                "object_put",
                bucket=bucket,
                key=key,
                etag=answer.get("headers", {}).get("etag"),
                token=token,
                ifMatch=environ.get("HTTP_IF_MATCH"),
                ifNoneMatch=environ.get("HTTP_IF_NONE_MATCH"),
                accepted=200 <= status < 300,
                httpStatus=status,
            )
            return result
        if call.operation == "getobject":
            result = self._answer(environ, capture, answer)
            status = answer.get("status", 0)
            history.record(
                "object_get", bucket=bucket, key=key, found=status in (200, 206), httpStatus=status
            )
            return result
        keys = [key] if call.operation == "deleteobject" else _keys_to_delete(_read_body(environ))
        with self._deletes:
            found = {name: _object_exists(bucket, name) for name in keys}
            result = self._answer(environ, capture, answer)
        status = answer.get("status", 0)
        for name in keys:
            history.record(
                "object_delete",
                bucket=bucket,
                key=name,
                found=found[name],
                httpStatus=status,
                operation=call.operation,
            )
        return result

    def _answer(
        self, environ: dict[str, Any], start_response: Callable[..., Any], answer: dict[str, Any]
    ) -> Iterable[bytes]:
        """moto's answer, read to the end if need be so its status is known."""
        result = self._app(environ, start_response)
        if "status" not in answer:
            result = list(result)
        return result

    def _job_queue_snapshot(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """GetJobQueueSnapshot, answered here in Batch's JSON (errors as a ClientException, as Batch's)."""
        try:
            request = json.loads(_read_body(environ) or b"{}")
        except ValueError as err:
            return _client_error(start_response, f"the body is not JSON: {err}")
        identifier = request.get("jobQueue") if isinstance(request, dict) else None
        if not isinstance(identifier, str) or not identifier:
            return _client_error(start_response, "jobQueue is required: the job queue's name or ARN")
        try:
            answer = job_queue_snapshot(self._runtime, identifier)
        except ClientException as err:
            return _client_error(start_response, err.message)
        return _respond(start_response, 200, answer)

    def _record_submission(self, environ: dict[str, Any]) -> None:
        body = _read_body(environ)
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {"_unparsable_body": body.decode("utf-8", errors="replace")}
        self._runtime.submissions.record(params)

    def _task_metadata(self, start_response: Callable[..., Any], method: str, path: str) -> list[bytes]:
        """A job container's ECS task metadata endpoint: ``<metadata id>`` or ``<metadata id>/task``."""
        if method != "GET":
            return _respond(start_response, 405, {"message": "use GET"})
        metadata = self._runtime.ecs_tasks.metadata(path)
        if metadata is None:
            return _respond(start_response, 404, {"message": "no task metadata here"})
        return _respond(start_response, 200, metadata)

    def _control(self, environ: dict[str, Any], start_response: Callable[..., Any], name: str) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        runtime = self._runtime
        if name.startswith(f"{METADATA_ROUTE}/"):
            return self._task_metadata(start_response, method, name[len(METADATA_ROUTE) + 1 :])
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
        if name == "jobs/vanish":
            if method != "POST":
                return _respond(start_response, 405, {"message": "use POST"})
            try:
                payload = json.loads(_read_body(environ) or b"{}")
            except ValueError as err:
                return _respond(start_response, 400, {"message": f"the body is not JSON: {err}"})
            vanished = {}
            for job_id in payload.get("jobIds", []):
                job = runtime.jobs.get(job_id)
                vanished[job_id] = job.vanish_now() if job is not None else False
            return _respond(start_response, 200, {"vanished": vanished})
        if name == "jobs":
            jobs = [
                {
                    "jobId": job.job_id,
                    "jobName": job.job_name,
                    "status": job.status,
                    "pid": job.pid,
                    "jobDefinition": job.job_definition.arn,
                    "image": job.image,
                    "vanished": job.vanished,
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
        if name == "history":
            if method == "DELETE":
                runtime.history.clear()
            elif method != "GET":
                return _respond(start_response, 405, {"message": "use GET or DELETE"})
            return _respond(start_response, 200, {"history": runtime.history.all()})
        if name == "workload-tokens":
            if method == "DELETE":
                runtime.history.clear_tokens()
            elif method != "GET":
                return _respond(start_response, 405, {"message": "use GET or DELETE"})
            return _respond(start_response, 200, {"tokens": runtime.history.tokens()})
        return _respond(
            start_response,
            404,
            {
                "message": f"unknown control endpoint {name!r}; use faults, submitted, environment, jobs, "
                "jobs/exit, jobs/vanish, calls, history or workload-tokens"
            },
        )
