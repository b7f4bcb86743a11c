"""throttle and latency by operation for S3 and SQS, answered in each protocol's own error shape."""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import QueryParser

from batch_devtools.local_batch import LocalBatch

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture
def s3(local_batch: LocalBatch) -> Any:
    return local_batch.client("s3", config=NO_RETRIES)


@pytest.fixture
def sqs(local_batch: LocalBatch) -> Any:
    return local_batch.client("sqs", config=NO_RETRIES)


def error_of(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return {"code": response["Error"]["Code"], "status": response["ResponseMetadata"]["HTTPStatusCode"]}


def test_s3_operations_are_throttled_with_s3s_own_errors(local_batch: LocalBatch, s3: Any) -> None:
    bucket = local_batch.environment.workload_bucket
    s3.put_object(Bucket=bucket, Key="faults/object.json", Body=b"{}")
    faults = local_batch.faults
    faults.throttle(operation="PutObject")
    faults.throttle(operation="GetObject", error_code="InternalError")
    faults.throttle(operation="DeleteObject", error_code="ServiceUnavailable")
    faults.throttle(operation="DeleteObjects")
    faults.throttle(operation="HeadBucket")

    put = error_of(s3.put_object, Bucket=bucket, Key="faults/object.json", Body=b"{}")
    get = error_of(s3.get_object, Bucket=bucket, Key="faults/object.json")
    delete = error_of(s3.delete_object, Bucket=bucket, Key="faults/object.json")
    delete_many = error_of(
        s3.delete_objects, Bucket=bucket, Delete={"Objects": [{"Key": "faults/object.json"}]}
    )
    head = error_of(s3.head_bucket, Bucket=bucket)

    assert put == {"code": "SlowDown", "status": 503}
    assert get == {"code": "InternalError", "status": 500}
    assert delete == {"code": "ServiceUnavailable", "status": 503}
    assert delete_many == {"code": "SlowDown", "status": 503}
    assert head["status"] == 503  # HEAD answers carry no body: botocore names the error by its status
    assert s3.get_object(Bucket=bucket, Key="faults/object.json")["Body"].read() == b"{}"
    assert faults.to_dict()["throttle"] == []


def test_s3_calls_are_named_for_call_counts_and_latency(local_batch: LocalBatch, s3: Any) -> None:
    bucket = local_batch.environment.workload_bucket
    local_batch.clear_api_calls()
    local_batch.faults.latency(0.3, operation="HeadBucket")

    started = time.monotonic()
    s3.head_bucket(Bucket=bucket)
    slow = time.monotonic() - started
    s3.put_object(Bucket=bucket, Key="named/a.json", Body=b"{}")
    s3.head_object(Bucket=bucket, Key="named/a.json")
    s3.list_objects_v2(Bucket=bucket, Prefix="named/")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "named/a.json"}]})

    assert slow >= 0.3
    assert local_batch.api_calls() == {
        "deleteobjects": 1,
        "headbucket": 1,
        "headobject": 1,
        "listobjectsv2": 1,
        "putobject": 1,
    }


def test_sqs_json_protocol_operations_are_throttled_by_name(local_batch: LocalBatch, sqs: Any) -> None:
    queue_url = local_batch.status_queue_url
    local_batch.faults.throttle(operation="ReceiveMessage")
    local_batch.faults.throttle(operation="DeleteMessageBatch", error_code="InternalError")

    receive = error_of(sqs.receive_message, QueueUrl=queue_url, WaitTimeSeconds=0)
    delete = error_of(
        sqs.delete_message_batch, QueueUrl=queue_url, Entries=[{"Id": "1", "ReceiptHandle": "x"}]
    )

    assert receive == {"code": "TooManyRequestsException", "status": 429}
    assert delete == {"code": "InternalError", "status": 500}
    assert (
        sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0)["ResponseMetadata"]["HTTPStatusCode"]
        == 200
    )


def test_sqs_query_protocol_operations_are_throttled_with_query_errors(local_batch: LocalBatch) -> None:
    local_batch.clear_api_calls()
    local_batch.faults.throttle(operation="ReceiveMessage", error_code="RequestThrottled", status_code=403)
    form = urllib.parse.urlencode({"Action": "ReceiveMessage", "QueueUrl": local_batch.status_queue_url})
    request = urllib.request.Request(
        local_batch.endpoint_url + "/",
        data=form.encode(),
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, "
            "SignedHeaders=host, Signature=0",
        },
    )

    with pytest.raises(urllib.error.HTTPError) as answered:
        urllib.request.urlopen(request, timeout=10)
    response = {"status_code": answered.value.code, "headers": {}, "body": answered.value.read()}
    parsed = QueryParser().parse(response, None)

    assert (answered.value.code, parsed["Error"]["Code"]) == (403, "RequestThrottled")
    assert local_batch.api_calls() == {"receivemessage": 1}
