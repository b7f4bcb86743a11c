"""Handing the workload to the job: the command for each transport, and the S3 object's life.

The gateway is a stub here; the same paths run over real HTTP in tests/integration/test_s3_transport.py.
"""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

import jwt
import pytest
from botocore.exceptions import ClientError

from airflow_batch_executor import airflow_compat
from airflow_batch_executor.naming import WorkloadIdentity, job_name
from airflow_batch_executor.options import S3Location
from airflow_batch_executor.request_factory import RequestFactory
from airflow_batch_executor.task_specs import JobSpec, workload_command
from airflow_batch_executor.workload_objects import split_uri
from airflow_batch_executor.workload_transport import WORKER_MODULE, object_uri, token_window

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


def spec_of(workload) -> JobSpec:
    identity = WorkloadIdentity("dag", "task", "run1", try_number=1)
    return JobSpec(identity, workload_command(workload), "default", None, workload=workload)


def build(workload, location: S3Location | None) -> dict:
    factory = RequestFactory(
        options(workload_transport=location), api_url="http://api/execution/", default_queue="default"
    )
    return factory.build(spec_of(workload))


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


def test_token_window_reads_iat_and_exp_and_tolerates_other_tokens():
    token = jwt.encode({"iat": 10, "exp": 70}, SECRET, algorithm="HS512")
    assert token_window(token) == (10.0, 70.0)
    assert token_window("workload-token") is None
    assert token_window("a.b.c") is None


def test_s3_mode_runs_twice_the_submit_threads_for_its_two_calls_per_submission():
    from airflow_batch_executor.job_supervisor import submit_threads

    assert submit_threads(options(submit_concurrency=4)) == 4
    assert submit_threads(options(submit_concurrency=4, workload_transport=LOCATION)) == 8
