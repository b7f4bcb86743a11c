"""Handing the workload to the job: the command for each transport, and the S3 object's life.

The gateway is a stub here; the same paths run over real HTTP in tests/integration/test_s3_transport.py.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from types import SimpleNamespace

import jwt
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from airflow_batch_executor import airflow_compat
from airflow_batch_executor.aws_errors import ApiErrorKind
from airflow_batch_executor.naming import WorkloadIdentity, job_name
from airflow_batch_executor.options import S3Location
from airflow_batch_executor.request_factory import RequestFactory
from airflow_batch_executor.submitter import Submission, Submitter
from airflow_batch_executor.task_specs import JobSpec, workload_command
from airflow_batch_executor.workload_transport import (
    WORKER_MODULE,
    WorkloadHandoff,
    object_uri,
    split_uri,
    token_window,
)

from .test_request import options

LOCATION = S3Location("workloads", "airflow/batch")
SECRET = "s" * 64


def client_error(code: str, status: int, operation: str = "SubmitJob") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


def make_workload(token: str = "scheduler-token"):
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


MINTS = airflow_compat.token_generator(SimpleNamespace(jwt_generator=object())) is not None
needs_minting = pytest.mark.skipif(
    not MINTS, reason="this Airflow cannot sign workload tokens; the scheduler's token is kept"
)


def generator(valid_for: float = 600):
    """A token generator where this Airflow lets an executor sign workload tokens, else None."""
    from airflow.api_fastapi.auth.tokens import JWTGenerator

    if not MINTS:
        return None
    return JWTGenerator(secret_key=SECRET, valid_for=valid_for, audience="urn:airflow.apache.org:task")


@pytest.fixture
def queued_timeout(monkeypatch):
    """Airflow 3.3 signs workload tokens for [scheduler] task_queued_timeout seconds."""
    monkeypatch.setenv("AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT", "600")


def spec_of(workload) -> JobSpec:
    identity = WorkloadIdentity("dag", "task", "run1", try_number=1)
    return JobSpec(identity, workload_command(workload), "default", None, workload=workload)


def build(workload, location: S3Location | None) -> dict:
    factory = RequestFactory(
        options(workload_transport=location), api_url="http://api/execution/", default_queue="default"
    )
    return factory.build(spec_of(workload))


class StubGateway:
    """SubmitJob and S3, recording what was sent and what exists."""

    def __init__(self, submit_failures=(), put_failures=(), delete_failures=()):
        self.submit_failures = list(submit_failures)
        self.put_failures = list(put_failures)
        self.delete_failures = list(delete_failures)
        self.objects: dict[tuple[str, str], bytes] = {}
        self.requests: list[dict] = []
        self.puts: list[dict] = []
        self.lock = threading.Lock()

    def put_object(self, bucket, key, body, kms_key_id=None):
        with self.lock:
            if self.put_failures:
                raise self.put_failures.pop(0)
            self.puts.append({"bucket": bucket, "key": key, "kms": kms_key_id})
            self.objects[(bucket, key)] = body

    def delete_object(self, bucket, key):
        with self.lock:
            if self.delete_failures:
                raise self.delete_failures.pop(0)
            self.objects.pop((bucket, key), None)

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


def attempt(gateway, submission, token_generator=None, kms=None):
    handoff = WorkloadHandoff(gateway, kms_key_id=kms, generator=token_generator)
    submitter = Submitter(gateway, rate=1000, concurrency=1, handoff=handoff)
    result = submitter._attempt(submission)
    handoff.stop()
    return result


def test_command_transport_carries_the_workload_in_the_command():
    workload = make_workload()
    request = build(workload, None)
    command = request["containerOverrides"]["command"]
    assert command[:4] == ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string"]
    assert json.loads(command[4])["token"] == "scheduler-token"
    assert object_uri(command) is None


def test_s3_transport_command_names_an_object_of_the_job_and_nothing_secret():
    workload = make_workload()
    request = build(workload, LOCATION)
    command = request["containerOverrides"]["command"]
    assert command[:3] == ["python", "-m", WORKER_MODULE] and len(command) == 4
    uri = object_uri(command)
    bucket, key = split_uri(uri)
    assert bucket == "workloads"
    name = job_name(WorkloadIdentity("dag", "task", "run1", try_number=1))
    assert key.startswith(f"airflow/batch/{name}.") and key.endswith(".json")
    assert "scheduler-token" not in json.dumps(request)
    # each submission has its own object, so removing a revoked job's object never hits a new one
    assert object_uri(build(workload, LOCATION)["containerOverrides"]["command"]) != uri


@needs_minting
def test_s3_mode_writes_a_fresh_token_and_the_request_holds_no_token(queued_timeout):
    workload = make_workload()
    request = build(workload, LOCATION)
    gateway = StubGateway()
    submission = Submission(("k", 1), request, spec_of(workload))
    result = attempt(gateway, submission, generator(), kms="alias/workloads")
    assert result.job_id == "id-1"
    [sent] = gateway.requests
    [((bucket, key), body)] = gateway.objects.items()
    assert f"s3://{bucket}/{key}" == submission.workload_uri
    assert gateway.puts[0]["kms"] == "alias/workloads"
    written = json.loads(body)
    assert written["ti"]["id"] == str(workload.ti.id)
    token = written["token"]
    assert token != "scheduler-token"
    claims = jwt.decode(token, SECRET, algorithms=["HS512"], audience="urn:airflow.apache.org:task")
    assert claims["sub"] == str(workload.ti.id)
    assert claims.get("scope", "workload") == "workload"  # Airflow 3.2.0 signs tokens without a scope
    dumped = json.dumps(sent)
    assert token not in dumped and "scheduler-token" not in dumped and "eyJ" not in dumped
    assert submission.token_window == (claims["iat"], claims["exp"])


@needs_minting
def test_command_mode_resubmission_carries_a_newly_signed_token(queued_timeout):
    workload = make_workload()
    gateway = StubGateway(submit_failures=[client_error("ServerException", 500)])
    submission = Submission(("k", 1), build(workload, None), spec_of(workload))
    assert attempt(gateway, submission, generator()).error_kind is ApiErrorKind.SERVER
    first_window = submission.token_window
    assert attempt(gateway, submission, generator()).job_id
    tokens = [json.loads(r["containerOverrides"]["command"][4])["token"] for r in gateway.requests]
    assert len(set(tokens)) == 2 and "scheduler-token" not in tokens
    assert submission.token_window == token_window(tokens[1]) and submission.token_window >= first_window


def test_without_a_generator_the_schedulers_token_is_kept():
    workload = make_workload()
    gateway = StubGateway()
    submission = Submission(("k", 1), build(workload, LOCATION), spec_of(workload))
    assert attempt(gateway, submission).job_id
    [body] = gateway.objects.values()
    assert json.loads(body)["token"] == "scheduler-token"
    assert submission.token_window is None


@pytest.mark.parametrize(
    "error, kind",
    [
        (client_error("TooManyRequestsException", 429), ApiErrorKind.THROTTLED),
        (client_error("ServerException", 500), ApiErrorKind.SERVER),
        (client_error("ClientException", 400), ApiErrorKind.REJECTED),
    ],
)
def test_submit_job_failing_after_the_write_removes_the_object(error, kind, queued_timeout):
    workload = make_workload()
    gateway = StubGateway(submit_failures=[error])
    submission = Submission(("k", 1), build(workload, LOCATION), spec_of(workload))
    result = attempt(gateway, submission, generator())
    assert result.error_kind is kind
    assert len(gateway.puts) == 1 and gateway.objects == {}


def test_a_lost_submit_job_answer_keeps_the_object_for_the_job_that_may_exist(queued_timeout):
    workload = make_workload()
    gateway = StubGateway(submit_failures=[ReadTimeoutError(endpoint_url="http://batch")])
    submission = Submission(("k", 1), build(workload, LOCATION), spec_of(workload))
    assert attempt(gateway, submission, generator()).error_kind is ApiErrorKind.AMBIGUOUS
    assert len(gateway.objects) == 1
    found = attempt(gateway, submission, generator())
    assert found.found_existing and len(gateway.requests) == 1 and len(gateway.objects) == 1


@pytest.mark.parametrize(
    "error, kind, text",
    [
        (client_error("SlowDown", 503, "PutObject"), ApiErrorKind.THROTTLED, "SlowDown"),
        (client_error("InternalError", 500, "PutObject"), ApiErrorKind.SERVER, "InternalError"),
        (client_error("AccessDenied", 403, "PutObject"), ApiErrorKind.REJECTED, "s3:PutObject"),
    ],
)
def test_a_failed_write_is_a_failed_submission_and_nothing_is_submitted(error, kind, text, queued_timeout):
    workload = make_workload()
    gateway = StubGateway(put_failures=[error])
    submission = Submission(("k", 1), build(workload, LOCATION), spec_of(workload))
    result = attempt(gateway, submission, generator())
    assert result.error_kind is kind and not result.job_id
    assert (
        f"writing the workload to {submission.workload_uri} failed" in result.error and text in result.error
    )
    assert gateway.requests == [] and gateway.objects == {}


def test_removal_is_best_effort_and_in_the_background(caplog):
    gateway = StubGateway(delete_failures=[client_error("AccessDenied", 403, "DeleteObject")])
    gateway.objects[("workloads", "a/b.json")] = b"{}"
    handoff = WorkloadHandoff(gateway, kms_key_id=None, generator=None)
    handoff.remove_later("s3://workloads/a/b.json")
    handoff.remove_later("s3://workloads/a/b.json")
    handoff.remove_later(None)
    handoff.stop()
    assert gateway.objects == {}
    assert "s3:DeleteObject" in caplog.text and "lifecycle rule" in caplog.text


@needs_minting
def test_a_waiting_jobs_object_is_rewritten_once_half_the_token_lifetime_is_gone(monkeypatch):
    # Airflow 3.3 (and 3.2.2) signs for task_queued_timeout, 3.2.0 for the generator's own lifetime.
    monkeypatch.setenv("AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT", "100")
    workload = make_workload()
    gateway = StubGateway()
    submission = Submission(("k", 1), build(workload, LOCATION), spec_of(workload))
    handoff = WorkloadHandoff(gateway, kms_key_id=None, generator=generator(valid_for=100))
    assert attempt(gateway, submission, generator(valid_for=100)).job_id
    issued, expires = submission.token_window
    assert expires - issued == 100
    assert not handoff.refresh_due(submission, issued + 49)
    assert handoff.refresh_due(submission, issued + 51)
    first = gateway.objects[split_uri(submission.workload_uri)]
    submission.refreshing = True
    assert not handoff.refresh_due(submission, issued + 51)  # one rewrite at a time
    submission.refreshing = False
    handoff.refresh_later(submission, submission.workload_uri)
    handoff.stop()
    rewritten = json.loads(gateway.objects[split_uri(submission.workload_uri)])
    assert rewritten["token"] != json.loads(first)["token"]
    assert submission.token_window == token_window(rewritten["token"])
    assert not submission.refreshing


@needs_minting
def test_a_failed_rewrite_is_tried_again_on_the_next_poll(monkeypatch, queued_timeout):
    workload = make_workload()
    gateway = StubGateway(put_failures=[client_error("InternalError", 500, "PutObject")])
    submission = Submission(("k", 1), build(workload, LOCATION), spec_of(workload))
    handoff = WorkloadHandoff(gateway, kms_key_id=None, generator=generator())
    handoff.refresh_later(submission, submission.workload_uri)
    handoff.stop()
    assert handoff.refresh_due(submission, time.time())


def test_token_window_reads_iat_and_exp_and_tolerates_other_tokens():
    token = jwt.encode({"iat": 10, "exp": 70}, SECRET, algorithm="HS512")
    assert token_window(token) == (10.0, 70.0)
    assert token_window("workload-token") is None
    assert token_window("a.b.c") is None


def test_s3_mode_runs_twice_the_submit_threads_for_its_two_calls_per_submission():
    from airflow_batch_executor.job_supervisor import submit_threads

    assert submit_threads(options(submit_concurrency=4)) == 4
    assert submit_threads(options(submit_concurrency=4, workload_transport=LOCATION)) == 8
