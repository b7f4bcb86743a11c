"""The status queue's gateway against a real boto3 SQS client with botocore's Stubber (no network): a
long poll for up to 10 messages with their receive count, and deletes in batches of 10."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from airflow_batch_executor.aws import queue_gateway as queue_gateway_module
from airflow_batch_executor.aws.queue_gateway import StatusQueueGateway

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/airflow-batch-status"


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    client = session.client("sqs")
    monkeypatch.setattr(queue_gateway_module, "aws_client", lambda *args, **kwargs: client)
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


@pytest.fixture
def status_queue(sqs: Stubber) -> StatusQueueGateway:
    return StatusQueueGateway("aws_default", "us-east-1", QUEUE_URL)


def test_receive_long_polls_for_up_to_10_messages_with_their_receive_count(sqs, status_queue):
    messages = [{"MessageId": "m1", "ReceiptHandle": "r1", "Body": "{}"}]
    sqs.add_response(
        "receive_message",
        {"Messages": messages},
        {
            "QueueUrl": QUEUE_URL,
            "MaxNumberOfMessages": 10,
            "WaitTimeSeconds": 7,
            "AttributeNames": ["ApproximateReceiveCount"],
        },
    )
    assert status_queue.receive(7) == messages


def test_an_empty_long_poll_is_no_messages(sqs, status_queue):
    sqs.add_response("receive_message", {})
    assert status_queue.receive(1) == []


def test_deletes_go_in_batches_of_10_and_the_refused_are_counted(sqs, status_queue):
    receipts = [f"r{n}" for n in range(23)]
    for start, refused in ((0, 0), (10, 2), (20, 1)):
        batch = receipts[start : start + 10]
        entries = [{"Id": str(index), "ReceiptHandle": receipt} for index, receipt in enumerate(batch)]
        failed = [{"Id": str(n), "SenderFault": False, "Code": "InternalError"} for n in range(refused)]
        sqs.add_response(
            "delete_message_batch",
            {"Successful": [{"Id": entry["Id"]} for entry in entries[refused:]], "Failed": failed},
            {"QueueUrl": QUEUE_URL, "Entries": entries},
        )
    assert status_queue.delete(receipts) == 3


def test_a_failing_receive_reaches_the_caller(sqs, status_queue):
    sqs.add_client_error(
        "receive_message", service_error_code="AWS.SimpleQueueService.NonExistentQueue", http_status_code=400
    )
    with pytest.raises(ClientError, match="NonExistentQueue"):
        status_queue.receive(1)


@pytest.mark.parametrize("concurrency, connections", [(1, 10), (8, 16), (50, 100)])
def test_the_connection_pool_holds_every_receive_and_delete_call_side_by_side(
    monkeypatch, concurrency, connections
):
    """A pool smaller than the calls under way makes botocore open and drop a connection per call."""
    configs = []

    def client(conn_id, region_name, service, config, team=None):
        configs.append(config)
        return SimpleNamespace(receive_message=lambda **request: {})

    monkeypatch.setattr(queue_gateway_module, "aws_client", client)
    StatusQueueGateway("aws_default", "us-east-1", QUEUE_URL, concurrency=concurrency).receive(1)
    assert [config.max_pool_connections for config in configs] == [connections]
