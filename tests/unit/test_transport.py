"""Handing the workload to the job: the command for each transport, and the S3 object's life.

The gateway is a stub here; the same paths run over real HTTP in tests/integration/test_s3_transport.py.
"""

from __future__ import annotations

import json

import jwt
import pytest

from airflow_batch_executor.job_contract import BOOTSTRAP_MODULE, object_uri, record_object_uri, split_s3_uri
from airflow_batch_executor.requests.naming import WorkloadIdentity, job_name
from airflow_batch_executor.workloads.transport import token_window

from .helpers import LOCATION, SECRET, make_workload, request_for


def test_command_transport_carries_the_workload_in_the_command():
    workload = make_workload()
    request = request_for(workload, None)
    command = request["containerOverrides"]["command"]
    assert command[:4] == ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string"]
    assert json.loads(command[4])["token"] == "scheduler-token"
    assert object_uri(command) is None


def test_s3_transport_command_names_an_object_of_the_job_and_nothing_secret():
    workload = make_workload()
    request = request_for(workload, LOCATION)
    command = request["containerOverrides"]["command"]
    assert command[:3] == ["python", "-m", BOOTSTRAP_MODULE] and len(command) == 4
    uri = object_uri(command)
    bucket, key = split_s3_uri(uri)
    assert bucket == "workloads"
    name = job_name(WorkloadIdentity("dag", "task", "run1", try_number=1))
    assert key.startswith(f"airflow/batch/{name}.") and key.endswith(".json")
    assert "scheduler-token" not in json.dumps(request)
    # each submission has its own object, so removing a revoked job's object never hits a new one
    assert object_uri(request_for(workload, LOCATION)["containerOverrides"]["command"]) != uri


def test_token_window_reads_iat_and_exp_and_tolerates_other_tokens():
    token = jwt.encode({"iat": 10, "exp": 70}, SECRET, algorithm="HS512")
    assert token_window(token) == (10.0, 70.0)
    assert token_window("workload-token") is None
    assert token_window("a.b.c") is None


@pytest.mark.parametrize("record", [None, {}, {"container": None}, {"container": ["x"]}, {"container": "x"}])
def test_a_record_without_a_usable_container_names_no_object(record):
    assert record_object_uri(record) is None
