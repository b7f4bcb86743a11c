"""Helpers shared by the unit tests: options and requests as the executor builds them, workloads and
their tokens, AWS errors as botocore raises them, and stub collaborators.

Test modules import their shared helpers from here, never from one another.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from botocore.exceptions import ClientError

from airflow_batch_executor.airflow_side import compat
from airflow_batch_executor.job_contract import split_s3_uri
from airflow_batch_executor.options import SECTION, ExecutorOptions, S3Location
from airflow_batch_executor.requests.factory import RequestFactory
from airflow_batch_executor.requests.naming import WorkloadIdentity
from airflow_batch_executor.requests.queue_ladder import QueueLadder
from airflow_batch_executor.requests.task_specs import JobSpec, workload_command
from airflow_batch_executor.submit.dispatch import Dispatch
from airflow_batch_executor.workloads.handoff import WorkloadHandoff

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root."""

BATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
"""What AWS Batch accepts as a job or job definition name."""

ROLE = "arn:aws:iam::123456789012:role/airflow-etl"

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, timeout: float = 10.0) -> T:
    """The first truthy value of ``condition()``; fails naming ``what`` after ``timeout`` seconds.

    For what a background thread brings about: the timeout is generous, so a loaded machine makes a
    test slower, never failed.
    """
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so after {timeout}s")
        time.sleep(0.005)
    return value


# ---------------------------------------------------------------- options


class FakeConf:
    """The ``[aws_batch_executor]`` section of Airflow's configuration, as ``load_options`` reads it."""

    def __init__(self, team_name: str | None = None, **values: str) -> None:
        self.team_name = team_name
        self.values = values

    def get(self, section, key, fallback=None):
        assert section == SECTION
        return self.values.get(key, fallback)


REQUIRED = {"job_queue": "q", "job_definition": "jd"}
"""The options without a default."""


def options(**overrides: Any) -> ExecutorOptions:
    """Options with the defaults of the config template, and ``overrides``."""
    values = {
        "conn_id": "aws_default",
        "region_name": "us-east-1",
        "job_queue": "q-default",
        "job_definition": "jd",
        "job_name": None,
        "submit_job_kwargs": {},
        "max_submit_job_attempts": 3,
        "check_health_on_startup": True,
        "terminate_jobs_on_shutdown": False,
        "submit_rate_limit": 40.0,
        "submit_concurrency": 4,
        "status_poll_interval": 2.0,
        "max_pending_seconds": 0.0,
        "share_identifier": None,
        "task_log_lines": 500,
    }
    values.update(overrides)
    return ExecutorOptions(**values)


# ---------------------------------------------------------------- requests

IDENTITY = WorkloadIdentity(dag_id="dag", task_id="task", run_id="run1", try_number=1)
COMMAND = [
    "python",
    "-m",
    "airflow.sdk.execution_time.execute_workload",
    "--json-string",
    '{"token": "secret"}',
]


def build(executor_config=None, queue="default", base_opts=None, prefix=None) -> dict[str, Any]:
    """The SubmitJob request the factory builds for the task of ``IDENTITY``."""
    factory = RequestFactory(
        base_opts or options(job_name=prefix), api_url="http://api:8080/execution/", default_queue="default"
    )
    spec = JobSpec(identity=IDENTITY, command=COMMAND, airflow_queue=queue, executor_config=executor_config)
    return factory.build(spec)


# ---------------------------------------------------------------- workloads and their transport

LOCATION = S3Location("workloads", "airflow/batch")
SECRET = "s" * 64
"""The key workload tokens are signed with here."""

MINTS = compat.token_generator(SimpleNamespace(jwt_generator=object())) is not None
"""Whether this Airflow lets an executor sign workload tokens."""
needs_minting = pytest.mark.skipif(
    not MINTS, reason="this Airflow cannot sign workload tokens; the scheduler's token is kept"
)


# ---------------------------------------------------------------- mapped siblings and arrays

S3_MODE = RequestFactory(
    options(workload_transport=LOCATION), api_url="http://api/execution/", default_queue="default"
)
COMMAND_MODE = RequestFactory(options(), api_url="http://api/execution/", default_queue="default")
MAPPED = WorkloadIdentity(dag_id="dag", task_id="task", run_id="run1", map_index=0, try_number=1)
"""Map index 0 of a mapped task's first try; ``replace`` it for a sibling."""


def make_workload(token: str = "scheduler-token"):
    """An ExecuteTask workload of the task of ``dag``/``task``/``run1``, try 1."""
    from airflow.executors.workloads import BundleInfo, ExecuteTask, TaskInstance

    ti = TaskInstance(
        id=uuid.uuid4(),
        task_id="task",
        dag_id="dag",
        run_id="run1",
        try_number=1,
        map_index=-1,
        dag_version_id=uuid.uuid4(),
        queue="default",
        pool_slots=1,
        priority_weight=1,
    )
    return ExecuteTask(
        ti=ti, dag_rel_path="dags/x.py", bundle_info=BundleInfo(name="dags"), log_path="x.log", token=token
    )


def generator(valid_for: float = 600):
    """A token generator where this Airflow lets an executor sign workload tokens, else None."""
    from airflow.api_fastapi.auth.tokens import JWTGenerator

    if not MINTS:
        return None
    return JWTGenerator(secret_key=SECRET, valid_for=valid_for, audience="urn:airflow.apache.org:task")


def spec_of(workload) -> JobSpec:
    identity = WorkloadIdentity("dag", "task", "run1", try_number=1)
    return JobSpec(identity, workload_command(workload), "default", None, workload=workload)


def request_for(workload, location: S3Location | None) -> dict[str, Any]:
    """The request for ``workload``: its workload in the command (``location`` None) or in S3."""
    factory = RequestFactory(
        options(workload_transport=location), api_url="http://api/execution/", default_queue="default"
    )
    return factory.build(spec_of(workload))


# ---------------------------------------------------------------- AWS errors


def client_error(code: str, status: int = 400, operation: str = "SubmitJob") -> ClientError:
    """The error botocore raises for an AWS error answer."""
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


# ---------------------------------------------------------------- metrics


class Recorder:
    """Airflow's ``Stats``, recording each call as (kind, name, tags), and each gauge's values in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, str] | None]] = []
        self.gauges: dict[str, list[float]] = {}

    def incr(self, name, count=1, rate=1, *, tags=None):
        self.calls.append(("incr", name, tags))

    def timing(self, name, value, *, tags=None):
        self.calls.append(("timing", name, tags))

    def gauge(self, name, value, rate=1, delta=False, *, tags=None):
        self.calls.append(("gauge", name, tags))
        self.gauges.setdefault(name, []).append(value)

    def names(self) -> list[str]:
        return [name for _, name, _ in self.calls]


# ---------------------------------------------------------------- job definitions

FARGATE_BASE = {
    "jobDefinitionName": "airflow-worker",
    "jobDefinitionArn": "arn:aws:batch:us-east-1:123456789012:job-definition/airflow-worker:7",
    "revision": 7,
    "status": "ACTIVE",
    "type": "container",
    "parameters": {},
    "platformCapabilities": ["FARGATE"],
    "propagateTags": False,
    "retryStrategy": {"attempts": 1},
    "tags": {"team": "data"},
    "containerProperties": {
        "image": "repo/airflow:3.3.2",
        "command": ["python", "-c", "pass"],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
        "executionRoleArn": "arn:aws:iam::123456789012:role/exec",
        "environment": [{"name": "A", "value": "1"}],
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/aws/batch/job"}},
        "networkConfiguration": {"assignPublicIp": "ENABLED"},
        "fargatePlatformConfiguration": {"platformVersion": "LATEST"},
        "volumes": [],
        "mountPoints": [],
    },
}
EC2_BASE = {**copy.deepcopy(FARGATE_BASE), "platformCapabilities": ["EC2"]}


class JobDefinitionsGateway:
    """Job definitions in memory, with a slow RegisterJobDefinition to widen race windows."""

    def __init__(self) -> None:
        self.definitions: list[dict] = []
        self.registered: list[dict] = []
        self.lookups = 0
        self._lock = threading.Lock()

    def job_definitions(self, name=None, status="ACTIVE"):
        self.lookups += 1
        return [d for d in self.definitions if d["jobDefinitionName"] == name and d["status"] == status]

    def register_job_definition(self, request):
        time.sleep(0.05)
        with self._lock:
            name = request["jobDefinitionName"]
            revision = 1 + sum(d["jobDefinitionName"] == name for d in self.definitions)
            arn = f"arn:aws:batch:us-east-1:123456789012:job-definition/{name}:{revision}"
            self.definitions.append(
                {**request, "revision": revision, "status": "ACTIVE", "jobDefinitionArn": arn}
            )
            self.registered.append(request)
            return arn


# ---------------------------------------------------------------- workload objects


class ConditionalS3Gateway:
    """SubmitJob and S3 with S3's rules for conditional writes, recording what was sent and exists."""

    def __init__(self, submit_failures=(), put_failures=(), delete_failures=()):
        self.submit_failures = list(submit_failures)
        self.put_failures = list(put_failures)
        self.delete_failures = list(delete_failures)
        self.objects: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.requests: list[dict] = []
        self.puts: list[dict] = []
        self.delete_calls: list[list[str]] = []
        self.single_deletes: list[tuple[str, bool]] = []
        self.writes = 0
        self.lock = threading.Lock()

    def put_object(self, bucket, key, body, kms_key_id=None, *, if_match=None, if_absent=False):
        with self.lock:
            if self.put_failures:
                raise self.put_failures.pop(0)
            existing = self.objects.get((bucket, key))
            if if_match is not None and existing is None:
                raise client_error("NoSuchKey", 404, "PutObject")
            if if_match is not None and existing[1] != if_match:
                raise client_error("PreconditionFailed", 412, "PutObject")
            if if_absent and existing is not None:
                raise client_error("PreconditionFailed", 412, "PutObject")
            self.writes += 1
            etag = f'"etag-{self.writes}"'
            self.puts.append({"bucket": bucket, "key": key, "kms": kms_key_id, "if_match": if_match})
            self.objects[(bucket, key)] = (body, etag)
            return etag

    def get_object(self, bucket, key):
        with self.lock:
            if (bucket, key) not in self.objects:
                raise client_error("NoSuchKey", 404, "GetObject")
            return self.objects[(bucket, key)]

    def delete_object(self, bucket, key, *, urgent=False):
        with self.lock:
            self.single_deletes.append((key, urgent))
            if self.delete_failures:
                raise self.delete_failures.pop(0)
            self.objects.pop((bucket, key), None)

    def delete_objects(self, bucket, keys):
        with self.lock:
            self.delete_calls.append(list(keys))
            if self.delete_failures:
                raise self.delete_failures.pop(0)
            for key in keys:
                self.objects.pop((bucket, key), None)
            return []

    def body(self, uri: str) -> dict:
        return json.loads(self.objects[split_s3_uri(uri)][0])

    def consume(self, uri: str) -> None:
        """What a job's bootstrap does: read the object, then delete it."""
        self.objects.pop(split_s3_uri(uri))

    def submit_job(self, request):
        with self.lock:
            self.requests.append(request)
            if self.submit_failures:
                raise self.submit_failures.pop(0)
            return f"id-{len(self.requests)}"

    def find_jobs_by_name(self, queue, name):
        return [
            {"jobId": f"id-{n + 1}", "jobName": name, "status": "SUBMITTED"}
            for n, request in enumerate(self.requests)
            if request["jobName"] == name
        ]

    def describe_jobs(self, job_ids):
        """Jobs, and an array's children (``<array id>:<index>``), as DescribeJobs shows them."""
        records = []
        for job_id in job_ids:
            parent, _, index = job_id.partition(":")
            n = int(parent.removeprefix("id-")) - 1
            if not 0 <= n < len(self.requests):
                continue
            request = self.requests[n]
            size = (request.get("arrayProperties") or {}).get("size", 0)
            if index and not int(index) < size:
                continue
            records.append(
                {
                    "jobId": job_id,
                    "jobName": request["jobName"],
                    "createdAt": n,
                    "tags": request.get("tags", {}),
                    "container": {"command": request.get("containerOverrides", {}).get("command")},
                }
            )
        return records

    def list_jobs(self, job_queue, *, status=None, name_pattern=None):
        """Summaries of the jobs whose names match ``name_pattern`` (Batch's trailing ``*``), newest first."""
        head = (name_pattern or "*").removesuffix("*")
        return [
            {"jobId": f"id-{n + 1}", "jobName": request["jobName"], "createdAt": n, "status": "SUBMITTED"}
            for n, request in reversed(list(enumerate(self.requests)))
            if request["jobName"].startswith(head)
        ]


# ---------------------------------------------------------------- submitting


class PlacedAsBuilt:
    """A request factory whose requests are already placed, and whose definitions are never pruned."""

    ladder = QueueLadder({})
    options = options()

    def place(self, request: dict[str, Any], spec: Any) -> dict[str, Any]:
        return request

    def definition_refused(self, request: Any, error: ClientError) -> bool:
        return False


def dispatch(gateway: Any, handoff: WorkloadHandoff | None = None) -> Dispatch:
    """A dispatch over a stub gateway: command mode with the scheduler's tokens unless ``handoff``."""
    handoff = handoff or WorkloadHandoff(gateway, kms_key_id=None, generator=None)
    return Dispatch(gateway, PlacedAsBuilt(), handoff)  # type: ignore[arg-type]


# ---------------------------------------------------------------- AWS Batch in memory


class FakeBatch:
    """AWS Batch's jobs in memory, behind the gateway's methods for them.

    A job is its DescribeJobs record, which the test changes (``update``) as Batch would. Every call
    is recorded; ``failures`` makes calls of an operation raise, in turn; ``hold`` makes them wait
    until released, counting the callers waiting in ``waiting``.
    """

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.describe_calls: list[list[str]] = []
        self.name_lookups: list[tuple[str, str]] = []
        self.terminated: list[tuple[str, str, bool]] = []
        """(job id, reason, urgent) of each TerminateJob."""
        self.failures: dict[str, list[BaseException]] = {}
        self.waiting: Counter[str] = Counter()
        self._held: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def hold(self, *operations: str) -> threading.Event:
        """Make calls of ``operations`` wait until the returned event is set (``release_all`` too)."""
        release = threading.Event()
        for operation in operations:
            self._held[operation] = release
        return release

    def release_all(self) -> None:
        for release in self._held.values():
            release.set()

    def _enter(self, operation: str) -> None:
        release = self._held.get(operation)
        if release is not None and not release.is_set():
            with self._lock:
                self.waiting[operation] += 1
            release.wait(timeout=60)
            with self._lock:
                self.waiting[operation] -= 1
        with self._lock:
            if self.failures.get(operation):
                raise self.failures[operation].pop(0)

    def add_job(self, name: str, status: str = "SUBMITTED", queue: str = "q", **fields: Any) -> str:
        """A job Batch has, as if submitted by someone; its id."""
        with self._lock:
            job_id = f"job-{len(self.jobs) + 1}"
            self.jobs[job_id] = {
                "jobId": job_id,
                "jobName": name,
                "jobQueue": queue,
                "status": status,
                "createdAt": len(self.jobs) + 1,
                **fields,
            }
            return job_id

    def update(self, job_id: str, **fields: Any) -> None:
        """Batch changed what DescribeJobs says of this job."""
        with self._lock:
            self.jobs[job_id] = {**self.jobs[job_id], **fields}

    def replace(self, job_id: str, record: Any) -> None:
        """DescribeJobs answers ``record``, whatever it is, for this job."""
        with self._lock:
            self.jobs[job_id] = record

    def forget(self, job_id: str) -> None:
        """Batch no longer knows this job: DescribeJobs leaves it out."""
        with self._lock:
            del self.jobs[job_id]

    def submit_job(self, request: dict[str, Any]) -> str:
        self._enter("submit_job")
        self.requests.append(request)
        command = (request.get("containerOverrides") or {}).get("command")
        return self.add_job(
            request["jobName"],
            queue=request["jobQueue"],
            tags=dict(request.get("tags") or {}),
            container={"command": command},
        )

    def describe_jobs(self, job_ids: list[str]) -> list[dict[str, Any]]:
        if len(job_ids) > 100:
            raise ValueError(f"describe_jobs takes at most 100 ids, got {len(job_ids)}")
        self._enter("describe_jobs")
        with self._lock:
            self.describe_calls.append(list(job_ids))
            records = [self.jobs[job_id] for job_id in job_ids if job_id in self.jobs]
        return [{**record} if type(record) is dict else record for record in records]

    def terminate_job(self, job_id: str, reason: str, *, urgent: bool = False) -> None:
        self._enter("terminate_job")
        with self._lock:
            self.terminated.append((job_id, reason, urgent))
            job = self.jobs.get(job_id)
            if type(job) is dict and job.get("status") not in ("SUCCEEDED", "FAILED"):
                self.jobs[job_id] = {**job, "status": "FAILED", "statusReason": reason}

    def find_jobs_by_name(self, job_queue: str, job_name: str) -> list[dict[str, Any]]:
        self._enter("find_jobs_by_name")
        with self._lock:
            self.name_lookups.append((job_queue, job_name))
            named = [
                {key: job.get(key) for key in ("jobId", "jobName", "status", "statusReason", "createdAt")}
                for job in self.jobs.values()
                if type(job) is dict and job["jobName"] == job_name and job["jobQueue"] == job_queue
            ]
        return sorted(named, key=lambda job: job["createdAt"], reverse=True)

    def terminated_ids(self) -> list[str]:
        with self._lock:
            return [job_id for job_id, _, _ in self.terminated]
