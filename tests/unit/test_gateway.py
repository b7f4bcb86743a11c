"""The AWS gateway against real boto3 clients with botocore's Stubber (no network): the requests it
sends, what it makes of the answers, which errors reach the caller, and fresh clients after a
credentials error."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from airflow_batch_executor.aws import gateway as gateway_module
from airflow_batch_executor.aws.gateway import URGENT_CONFIG, BatchGateway
from airflow_batch_executor.job_contract import MAX_REASON_CHARS

SESSION = boto3.session.Session(
    aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
)
"""Credentials of no one: a Stubber answers every call before anything is sent."""


class StubbedAws:
    """The clients the gateway asks for, each a real boto3 client under a Stubber.

    Batch calls share one client, except those the scheduler's thread waits on (made with the
    gateway's ``URGENT_CONFIG``), which get one of their own. ``built`` counts the clients asked for.
    """

    def __init__(self) -> None:
        self.clients = {name: SESSION.client(name) for name in ("batch", "logs", "s3")}
        self.clients["urgent"] = SESSION.client("batch")
        self.stubs = {name: Stubber(client) for name, client in self.clients.items()}
        for stub in self.stubs.values():
            stub.activate()
        self.built = 0

    def aws_clients(
        self, conn_id: str, region_name: str | None, wanted: dict[str, tuple[str, Config]], team=None
    ) -> dict[str, Any]:
        self.built += len(wanted)
        return {
            name: self.clients["urgent" if config is URGENT_CONFIG else service]
            for name, (service, config) in wanted.items()
        }

    def __getitem__(self, name: str) -> Stubber:
        return self.stubs[name]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubbedAws]:
    stubbed = StubbedAws()
    monkeypatch.setattr(gateway_module, "aws_clients", stubbed.aws_clients)
    yield stubbed
    for stub in stubbed.stubs.values():
        stub.assert_no_pending_responses()


@pytest.fixture
def gateway(aws: StubbedAws) -> BatchGateway:
    return BatchGateway("aws_default", "us-east-1")


REQUEST = {
    "jobName": "dag-task-try1-abc",
    "jobQueue": "q",
    "jobDefinition": "jd",
    "containerOverrides": {"command": ["python", "-c", "pass"]},
    "tags": {"airflow.dag_id": "dag"},
}


JD_ARN = "arn:aws:batch:us-east-1:123456789012:job-definition/jd:3"


def job_summary(job_id: str, name: str, created: int) -> dict[str, Any]:
    return {"jobId": job_id, "jobName": name, "createdAt": created, "status": "RUNNABLE"}


# ---------------------------------------------------------------- Batch


def test_submit_job_sends_the_request_as_it_is_and_returns_the_job_id(aws, gateway):
    aws["batch"].add_response("submit_job", {"jobId": "j1", "jobName": REQUEST["jobName"]}, REQUEST)
    assert gateway.submit_job(REQUEST) == "j1"


@pytest.mark.parametrize(
    "code, status", [("TooManyRequestsException", 429), ("ClientException", 400), ("ServerException", 500)]
)
def test_a_submit_job_error_reaches_the_caller_after_one_call(aws, gateway, code, status):
    aws["batch"].add_client_error("submit_job", service_error_code=code, http_status_code=status)
    with pytest.raises(ClientError) as raised:
        gateway.submit_job(REQUEST)
    assert raised.value.response["Error"]["Code"] == code


def test_describe_jobs_asks_for_the_ids_given_and_no_more_than_100(aws, gateway):
    ids = [f"j{n}" for n in range(100)]
    record = {"jobId": "j1", "jobName": "a", "jobQueue": "q", "jobDefinition": "jd"}
    records = [{**record, "status": "RUNNING", "startedAt": 1}]
    aws["batch"].add_response("describe_jobs", {"jobs": records}, {"jobs": ids})
    assert gateway.describe_jobs(ids) == records
    with pytest.raises(ValueError, match="at most 100 ids, got 101"):
        gateway.describe_jobs([*ids, "j100"])
    assert gateway.describe_jobs([]) == [], "no call for no ids"


def test_terminate_job_gives_a_reason_batch_accepts(aws, gateway):
    long_reason = "x" * (MAX_REASON_CHARS + 50)
    aws["batch"].add_response("terminate_job", {}, {"jobId": "j1", "reason": "x" * MAX_REASON_CHARS})
    gateway.terminate_job("j1", long_reason)


def test_an_urgent_terminate_job_uses_the_client_of_one_short_attempt(aws, gateway):
    aws["urgent"].add_response("terminate_job", {}, {"jobId": "j1", "reason": "revoked"})
    gateway.terminate_job("j1", "revoked", urgent=True)
    assert URGENT_CONFIG.retries == {"mode": "standard", "total_max_attempts": 1}


def test_terminating_a_job_batch_refuses_is_not_an_error_but_a_failing_call_is(aws, gateway):
    aws["batch"].add_client_error("terminate_job", service_error_code="ClientException", http_status_code=400)
    gateway.terminate_job("gone", "revoked")
    aws["batch"].add_client_error("terminate_job", service_error_code="ServerException", http_status_code=500)
    with pytest.raises(ClientError, match="ServerException"):
        gateway.terminate_job("j1", "revoked")


def test_list_jobs_by_name_pattern_follows_every_page_and_returns_the_newest_first(aws, gateway):
    query = {"jobQueue": "q", "filters": [{"name": "JOB_NAME", "values": ["dag-task-*"]}]}
    first_page = {"jobSummaryList": [job_summary("old", "dag-task-1", 1)], "nextToken": "page-2"}
    newer = [job_summary("new", "dag-task-2", 5), job_summary("mid", "dag-task-3", 3)]
    second_page = {"jobSummaryList": newer}
    aws["batch"].add_response("list_jobs", first_page, query)
    aws["batch"].add_response("list_jobs", second_page, {**query, "nextToken": "page-2"})
    jobs = gateway.list_jobs("q", name_pattern="dag-task-*")
    assert [job["jobId"] for job in jobs] == ["new", "mid", "old"]


def test_list_jobs_by_status_asks_for_that_status(aws, gateway):
    listed = {"jobSummaryList": [job_summary("j1", "a", 1)]}
    aws["batch"].add_response("list_jobs", listed, {"jobQueue": "q", "jobStatus": "RUNNABLE"})
    assert [job["jobId"] for job in gateway.list_jobs("q", status="RUNNABLE")] == ["j1"]


def test_find_jobs_by_name_keeps_only_the_jobs_of_exactly_that_name(aws, gateway):
    listed = [job_summary("j1", "dag-task-try1", 1), job_summary("j2", "dag-task-try10", 2)]
    aws["batch"].add_response(
        "list_jobs",
        {"jobSummaryList": listed},
        {"jobQueue": "q", "filters": [{"name": "JOB_NAME", "values": ["dag-task-try1"]}]},
    )
    assert [job["jobId"] for job in gateway.find_jobs_by_name("q", "dag-task-try1")] == ["j1"]


@pytest.mark.parametrize(
    "reference, params",
    [
        ("jd", {"jobDefinitionName": "jd", "status": "ACTIVE"}),
        ("jd:3", {"jobDefinitions": ["jd:3"]}),
        (JD_ARN, {"jobDefinitions": [JD_ARN]}),
    ],
)
def test_describe_job_definition_finds_what_submit_job_would_use(aws, gateway, reference, params):
    revisions = [
        {"jobDefinitionName": "jd", "jobDefinitionArn": f"arn:jd:{n}", "revision": n, "type": "container"}
        for n in (2, 3, 1)
    ]
    aws["batch"].add_response("describe_job_definitions", {"jobDefinitions": revisions}, params)
    assert gateway.describe_job_definition(reference)["revision"] == 3, "the newest revision"
    aws["batch"].add_response("describe_job_definitions", {"jobDefinitions": []}, params)
    assert gateway.describe_job_definition(reference) is None


def test_log_lines_asks_for_the_newest_lines_and_returns_their_messages(aws, gateway):
    aws["logs"].add_response(
        "get_log_events",
        {"events": [{"timestamp": 1, "message": "one"}, {"timestamp": 2, "message": "two"}]},
        {"logGroupName": "/aws/batch/job", "logStreamName": "s", "limit": 2, "startFromHead": False},
    )
    assert gateway.log_lines("/aws/batch/job", "s", 2) == ["one", "two"]


# ---------------------------------------------------------------- S3


@pytest.mark.parametrize(
    "kms_key_id, if_match, encryption",
    [
        (None, None, {"ServerSideEncryption": "AES256"}),
        ("alias/workloads", None, {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/workloads"}),
        (None, '"etag-1"', {"ServerSideEncryption": "AES256", "IfMatch": '"etag-1"'}),
    ],
)
def test_put_object_encrypts_writes_conditionally_when_asked_and_returns_the_etag(
    aws, gateway, kms_key_id, if_match, encryption
):
    aws["s3"].add_response(
        "put_object", {"ETag": '"etag-2"'}, {"Bucket": "b", "Key": "k", "Body": b"{}", **encryption}
    )
    assert gateway.put_object("b", "k", b"{}", kms_key_id, if_match=if_match) == '"etag-2"'


def test_a_conditional_write_s3_refuses_reaches_the_caller(aws, gateway):
    aws["s3"].add_client_error("put_object", service_error_code="PreconditionFailed", http_status_code=412)
    with pytest.raises(ClientError, match="PreconditionFailed"):
        gateway.put_object("b", "k", b"{}", if_match='"etag-1"')


def test_get_object_returns_the_body_and_etag(aws, gateway):
    aws["s3"].add_response(
        "get_object",
        {"Body": StreamingBody(io.BytesIO(b'{"token": "t"}'), 14), "ETag": '"etag-1"'},
        {"Bucket": "b", "Key": "k"},
    )
    assert gateway.get_object("b", "k") == (b'{"token": "t"}', '"etag-1"')


def test_delete_objects_deletes_up_to_1000_keys_quietly_and_returns_those_not_deleted(aws, gateway):
    keys = [f"k{n}" for n in range(1000)]
    aws["s3"].add_response(
        "delete_objects",
        {"Errors": [{"Key": "k7", "Code": "AccessDenied", "Message": "denied"}]},
        {"Bucket": "b", "Delete": {"Objects": [{"Key": key} for key in keys], "Quiet": True}},
    )
    assert gateway.delete_objects("b", keys) == ["k7"]
    with pytest.raises(ValueError, match="at most 1000 keys, got 1001"):
        gateway.delete_objects("b", [*keys, "k1000"])
    assert gateway.delete_objects("b", []) == [], "no call for no keys"


def test_bucket_region_is_read_even_from_a_refusal_that_names_it(aws, gateway):
    aws["s3"].add_response("head_bucket", {"BucketRegion": "eu-west-1"}, {"Bucket": "b"})
    assert gateway.bucket_region("b") == "eu-west-1"
    aws["s3"].add_client_error(
        "head_bucket",
        service_error_code="403",
        http_status_code=403,
        response_meta={"HTTPHeaders": {"x-amz-bucket-region": "eu-central-1"}},
    )
    assert gateway.bucket_region("b") == "eu-central-1"
    aws["s3"].add_client_error("head_bucket", service_error_code="404", http_status_code=404)
    with pytest.raises(ClientError):
        gateway.bucket_region("missing")


# ---------------------------------------------------------------- credentials


def test_a_credentials_error_gets_fresh_clients_for_the_next_call_but_not_again_at_once(monkeypatch, aws):
    monkeypatch.setattr(gateway_module, "RECONNECT_MIN_PAUSE", 30.0)
    gateway = BatchGateway("aws_default", "us-east-1")
    expired = {"service_error_code": "ExpiredTokenException", "http_status_code": 400}
    aws["batch"].add_client_error("describe_jobs", **expired)
    with pytest.raises(ClientError, match="ExpiredTokenException"):
        gateway.describe_jobs(["j1"])
    built = aws.built
    aws["batch"].add_client_error("describe_jobs", **expired)
    with pytest.raises(ClientError, match="ExpiredTokenException"):
        gateway.describe_jobs(["j1"])
    assert aws.built > built, "the call after a credentials error is made with fresh clients"
    built = aws.built
    aws["batch"].add_response("describe_jobs", {"jobs": []}, {"jobs": ["j1"]})
    assert gateway.describe_jobs(["j1"]) == []
    assert aws.built == built, "a second credentials error right after the first does not rebuild them"


def test_an_error_that_is_not_about_credentials_keeps_the_clients(aws, gateway):
    aws["batch"].add_client_error("describe_jobs", service_error_code="ServerException", http_status_code=500)
    with pytest.raises(ClientError):
        gateway.describe_jobs(["j1"])
    built = aws.built
    aws["batch"].add_response("describe_jobs", {"jobs": []}, {"jobs": ["j1"]})
    gateway.describe_jobs(["j1"])
    assert aws.built == built


@pytest.mark.parametrize(
    ("operation", "call"),
    [
        ("list_jobs", lambda gateway: gateway.find_jobs_by_name("q", "a-job")),
        ("describe_job_definitions", lambda gateway: gateway.job_definitions("jd")),
        ("describe_job_queues", lambda gateway: gateway.job_queue_names()),
    ],
)
def test_a_credentials_error_in_a_paginated_call_gets_fresh_clients_too(aws, gateway, operation, call):
    aws["batch"].add_response("describe_jobs", {"jobs": []}, {"jobs": ["j0"]})
    gateway.describe_jobs(["j0"])
    built = aws.built
    aws["batch"].add_client_error(operation, service_error_code="ExpiredTokenException", http_status_code=400)
    with pytest.raises(ClientError, match="ExpiredTokenException"):
        call(gateway)
    aws["batch"].add_response("describe_jobs", {"jobs": []}, {"jobs": ["j1"]})
    gateway.describe_jobs(["j1"])
    assert aws.built > built, "the call after a credentials error is made with fresh clients"
