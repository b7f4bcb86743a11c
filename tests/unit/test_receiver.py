"""The status event receiver over a status queue in memory: Batch job state-change events are handed
over with their receipt and receive count; a message that is no such event is logged and left on the
queue (for its dead-letter queue) and never stops the receiver; acknowledged messages are deleted in
batches, in the background; ``answering`` says whether the queue answers."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_batch_executor.status import receiver as receiver_module
from airflow_batch_executor.status.receiver import StatusEventReceiver

from .helpers import client_error, wait_until

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/airflow-batch-status"


def body(job_id: str = "job-1", status: str = "RUNNING", **detail: Any) -> str:
    """An SQS message body as EventBridge delivers a Batch Job State Change."""
    return json.dumps(
        {
            "source": "aws.batch",
            "detail-type": "Batch Job State Change",
            "detail": {"jobId": job_id, "jobName": "dag-task-try1", "status": status, **detail},
        }
    )


def message(receipt: str, text: str, count: int = 1) -> dict[str, Any]:
    return {
        "MessageId": f"id-{receipt}",
        "ReceiptHandle": receipt,
        "Body": text,
        "Attributes": {"ApproximateReceiveCount": str(count)},
    }


class StatusQueue:
    """ReceiveMessage and DeleteMessageBatch on a queue in memory.

    ``answers`` are handed out in turn by the long polls, each a list of messages or an exception to
    raise; with none left, a long poll waits a little and answers no messages. While ``failing`` is
    set, every long poll raises it. ``release_deletes`` makes each delete wait until it is set.
    """

    queue_url = QUEUE_URL

    def __init__(self) -> None:
        self.answers: list[list[dict[str, Any]] | BaseException] = []
        self.failing: BaseException | None = None
        self.receives = 0
        self.deleted: list[list[str]] = []
        self.delete_failures: list[BaseException] = []
        self.deletes_waiting = 0
        self.release_deletes: threading.Event | None = None
        self._arrived = threading.Condition()

    def send(self, *answers: list[dict[str, Any]] | BaseException) -> None:
        with self._arrived:
            self.answers += answers
            self._arrived.notify_all()

    def receive(self, wait_seconds: int = 10) -> list[dict[str, Any]]:
        self.receives += 1
        if self.failing is not None:
            raise self.failing
        with self._arrived:
            if not self.answers:
                self._arrived.wait(timeout=min(wait_seconds, 0.05))
            if not self.answers:
                return []
            answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def delete(self, receipt_handles: list[str]) -> int:
        if self.release_deletes is not None:
            self.deletes_waiting += 1
            self.release_deletes.wait(timeout=60)
            self.deletes_waiting -= 1
        if self.delete_failures:
            raise self.delete_failures.pop(0)
        self.deleted.append(list(receipt_handles))
        return 0

    def deleted_receipts(self) -> list[str]:
        return [receipt for batch in self.deleted for receipt in batch]


@pytest.fixture
def status_queue() -> StatusQueue:
    return StatusQueue()


@pytest.fixture
def receiver(status_queue: StatusQueue, monkeypatch: pytest.MonkeyPatch) -> Iterator[StatusEventReceiver]:
    monkeypatch.setattr(receiver_module, "RETRY_MIN_SECONDS", 0.01)
    started = StatusEventReceiver(status_queue)  # type: ignore[arg-type]
    started.start()
    yield started
    if status_queue.release_deletes is not None:
        status_queue.release_deletes.set()
    started.stop()


def received(receiver: StatusEventReceiver, count: int) -> list:
    """Drain the receiver until ``count`` events have come."""
    events: list = []

    def enough() -> bool:
        events.extend(receiver.results())
        return len(events) >= count

    wait_until(enough, f"{count} events received")
    return events


def test_state_change_events_are_handed_over_with_their_receipt_and_receive_count(receiver, status_queue):
    status_queue.send(
        [message("r1", body("job-1", "RUNNING"), count=1), message("r2", body("job-2", "FAILED"), count=3)]
    )
    first, second = received(receiver, 2)
    assert (first.receipt, first.receive_count, first.event.job_id, first.event.status) == (
        "r1",
        1,
        "job-1",
        "RUNNING",
    )
    assert (second.receipt, second.receive_count, second.event.job_id, second.event.status) == (
        "r2",
        3,
        "job-2",
        "FAILED",
    )
    assert second.event.record["jobName"] == "dag-task-try1", "the event's detail is the job's record"
    assert receiver.results() == [], "each event is handed over once"
    assert status_queue.deleted == [], "nothing is deleted before it is acknowledged"


@pytest.mark.parametrize(
    "unreadable",
    [
        pytest.param(message("bad", "not json {"), id="body-not-json"),
        pytest.param(message("bad", body(status=["RUNNING"])), id="status-a-list"),  # type: ignore[arg-type]
        pytest.param(message("bad", body(status="SCHEDULED")), id="unknown-status"),
        pytest.param(
            message("bad", json.dumps({"source": "aws.batch", "detail-type": "Batch Job State Change"})),
            id="no-detail",
        ),
        pytest.param(
            message("bad", json.dumps({"source": "aws.s3", "detail-type": "Object Created", "detail": {}})),
            id="another-event",
        ),
        pytest.param({"MessageId": "id-bad", "Body": body()}, id="no-receipt"),
        pytest.param(
            {**message("bad", body()), "Attributes": {"ApproximateReceiveCount": "x"}}, id="bad-count"
        ),
    ],
)
def test_a_message_that_is_no_state_change_event_is_logged_left_on_the_queue_and_the_rest_go_on(
    receiver, status_queue, recorder, caplog, unreadable
):
    with caplog.at_level(logging.WARNING, logger=receiver_module.__name__):
        status_queue.send([unreadable, message("good-1", body("job-1"))], [message("good-2", body("job-2"))])
        events = received(receiver, 2)
    assert [event.receipt for event in events] == ["good-1", "good-2"]
    assert "Message id-bad on the status queue" in caplog.text and "dead-letter queue" in caplog.text
    assert [name for name in recorder.names() if name.endswith("status_events.unreadable")] == [
        "aws_batch_executor.status_events.unreadable"
    ]
    receiver.acknowledge([event.receipt for event in events])
    wait_until(lambda: len(status_queue.deleted_receipts()) == 2, "the handled messages deleted")
    assert sorted(status_queue.deleted_receipts()) == ["good-1", "good-2"], "the unreadable one is left"


def test_acknowledged_messages_are_deleted_in_batches_in_the_background(receiver, status_queue):
    status_queue.release_deletes = release = threading.Event()
    receiver.acknowledge(["r0"])
    wait_until(lambda: status_queue.deletes_waiting == 1, "the first delete under way")
    later = [f"r{n}" for n in range(1, 25)]
    receiver.acknowledge(later)
    release.set()
    wait_until(lambda: len(status_queue.deleted_receipts()) == 25, "every message deleted")
    assert status_queue.deleted == [["r0"], later], "what waited meanwhile goes in one batch"


def test_a_failed_delete_is_logged_and_later_deletes_still_happen(receiver, status_queue, caplog):
    gone = client_error("AWS.SimpleQueueService.NonExistentQueue", 400, "DeleteMessageBatch")
    status_queue.delete_failures.append(gone)
    with caplog.at_level(logging.WARNING, logger=receiver_module.__name__):
        receiver.acknowledge(["r1"])
        wait_until(lambda: "Could not delete 1 message(s)" in caplog.text, "the failed delete logged")
    receiver.acknowledge(["r2"])
    wait_until(lambda: status_queue.deleted, "the next delete made")
    assert status_queue.deleted == [["r2"]]


def test_answering_says_whether_the_queue_answers_and_events_flow_again_once_it_does(
    receiver, status_queue, recorder
):
    assert receiver.answering
    status_queue.failing = client_error("AccessDenied", 403, "ReceiveMessage")
    wait_until(lambda: not receiver.answering, "the receiver saw the queue fail")
    failed_at = status_queue.receives
    wait_until(lambda: status_queue.receives >= failed_at + 2, "the receiver kept trying")
    assert not receiver.answering
    assert recorder.names().count("aws_batch_executor.status_events.queue_failed") == 1, "counted once"
    status_queue.failing = None
    wait_until(lambda: receiver.answering, "the receiver saw the queue answer again")
    status_queue.send([message("r1", body("job-1"))])
    [event] = received(receiver, 1)
    assert event.event.job_id == "job-1"
    assert receiver.answering
