"""The status event receiver over a status queue in memory, where every call takes 50 ms: Batch job
state-change events are handed over with their receipt and receive count; a message that is no such
event is logged and left on the queue (for its dead-letter queue) and never stops the receiver;
acknowledged messages are deleted in batches, in the background; ``answering`` says whether the queue
answers. Under a backlog the long polls grow in number, up to the concurrency, and shrink back to one
once it is drained; every message still reaches the scheduler once and is deleted once."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_batch_executor.status import receiver as receiver_module
from airflow_batch_executor.status.deleter import spread
from airflow_batch_executor.status.receiver import StatusEventReceiver

from .helpers import client_error, wait_until

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/airflow-batch-status"
CALL_SECONDS = 0.05
CONCURRENCY = 4
LOOPS = "aws_batch_executor.status_events.receive_loops"


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
    """ReceiveMessage and DeleteMessageBatch on a queue in memory; every call takes ``CALL_SECONDS``.

    ``answers`` are handed out in turn by the long polls, each a list of messages or an exception to
    raise; with none left, a long poll takes up to 10 messages of the ``backlog``; with none there
    either, it waits a little and answers no messages. While ``failing`` is set, every long poll raises
    it. ``release_deletes`` makes each delete wait until it is set. ``most_receiving`` is the most long
    polls that were ever under way at once.
    """

    queue_url = QUEUE_URL

    def __init__(self) -> None:
        self.answers: list[list[dict[str, Any]] | BaseException] = []
        self.backlog: deque[dict[str, Any]] = deque()
        self.failing: BaseException | None = None
        self.receives = 0
        self.receiving = 0
        self.most_receiving = 0
        self.deleted: list[list[str]] = []
        self.delete_failures: list[BaseException] = []
        self.deletes_waiting = 0
        self.release_deletes: threading.Event | None = None
        self._arrived = threading.Condition()

    def send(self, *answers: list[dict[str, Any]] | BaseException) -> None:
        with self._arrived:
            self.answers += answers
            self._arrived.notify_all()

    def fill(self, messages: list[dict[str, Any]]) -> None:
        """Put ``messages`` on the queue at once."""
        with self._arrived:
            self.backlog.extend(messages)
            self._arrived.notify_all()

    def receive(self, wait_seconds: int = 10) -> list[dict[str, Any]]:
        with self._arrived:
            self.receives += 1
            self.receiving += 1
            self.most_receiving = max(self.most_receiving, self.receiving)
        try:
            time.sleep(CALL_SECONDS)
            if self.failing is not None:
                raise self.failing
            return self._answer(wait_seconds)
        finally:
            with self._arrived:
                self.receiving -= 1

    def _answer(self, wait_seconds: int) -> list[dict[str, Any]]:
        with self._arrived:
            if not self.answers and not self.backlog:
                self._arrived.wait(timeout=min(wait_seconds, 0.05))
            if self.answers:
                answer = self.answers.pop(0)
            else:
                answer = [self.backlog.popleft() for _ in range(min(10, len(self.backlog)))]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def delete(self, receipt_handles: list[str]) -> int:
        if self.release_deletes is not None:
            with self._arrived:
                self.deletes_waiting += 1
            self.release_deletes.wait(timeout=60)
            with self._arrived:
                self.deletes_waiting -= 1
        time.sleep(CALL_SECONDS * -(-len(receipt_handles) // 10))
        with self._arrived:
            if self.delete_failures:
                raise self.delete_failures.pop(0)
            self.deleted.append(list(receipt_handles))
        return 0

    def deleted_receipts(self) -> list[str]:
        with self._arrived:
            return [receipt for batch in self.deleted for receipt in batch]


@pytest.fixture
def status_queue() -> StatusQueue:
    return StatusQueue()


@pytest.fixture
def receiver(status_queue: StatusQueue, monkeypatch: pytest.MonkeyPatch) -> Iterator[StatusEventReceiver]:
    monkeypatch.setattr(receiver_module, "RETRY_MIN_SECONDS", 0.01)
    started = StatusEventReceiver(status_queue, concurrency=CONCURRENCY)  # type: ignore[arg-type]
    started.start()
    yield started
    if status_queue.release_deletes is not None:
        status_queue.release_deletes.set()
    started.stop()


def received(receiver: StatusEventReceiver, count: int, acknowledge: bool = False) -> list:
    """Drain the receiver until ``count`` events have come, acknowledging each when asked to (as the
    scheduler's thread does)."""
    events: list = []

    def enough() -> bool:
        drained = receiver.results()
        if acknowledge:
            receiver.acknowledge([event.receipt for event in drained])
        events.extend(drained)
        return len(events) >= count

    wait_until(enough, f"{count} events received")
    return events


def events_of(count: int) -> list[dict[str, Any]]:
    """Messages of one state-change event each, for jobs ``job-0`` on."""
    return [message(f"r{n}", body(f"job-{n}", "SUCCEEDED")) for n in range(count)]


def endless_backlog() -> list[dict[str, Any]]:
    """More messages than the receiver drains in a test: it keeps receiving full answers meanwhile."""
    text = body()
    return [message(f"r{n}", text) for n in range(50_000)]


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


def test_long_polls_grow_under_a_backlog_up_to_the_concurrency_and_shrink_back_once_it_is_drained(
    receiver, status_queue, recorder
):
    status_queue.fill(events_of(600))
    received(receiver, 600)
    assert max(recorder.gauges[LOOPS]) == CONCURRENCY, "full answers started more long polls"
    assert 1 < status_queue.most_receiving <= CONCURRENCY
    wait_until(
        lambda: recorder.gauges[LOOPS][-1] == 1 and status_queue.receiving <= 1,
        "one long poll again on the drained queue",
    )
    status_queue.send([message("quiet", body("job-quiet"))])
    received(receiver, 1)
    assert recorder.gauges[LOOPS][-1] == 1, "a short answer starts no long poll"


def test_under_a_backlog_every_message_reaches_the_scheduler_once_and_is_deleted_once(receiver, status_queue):
    messages = events_of(500)
    status_queue.fill(messages)
    events = received(receiver, 500, acknowledge=True)
    assert Counter(event.receipt for event in events) == Counter(m["ReceiptHandle"] for m in messages)
    assert sorted(event.event.job_id for event in events) == sorted(f"job-{n}" for n in range(500))
    wait_until(lambda: len(status_queue.deleted_receipts()) >= 500, "every message deleted")
    deleted = Counter(status_queue.deleted_receipts())
    assert deleted == Counter(m["ReceiptHandle"] for m in messages), "each deleted once, none twice"
    assert receiver.results() == []


def test_unreadable_messages_in_a_backlog_stop_neither_the_long_polls_nor_their_growth(
    receiver, status_queue, recorder, caplog
):
    unreadable = [
        message("bad-json", "not json {"),
        message("bad-status", body(status=["RUNNING"])),  # type: ignore[arg-type]
        {"MessageId": "id-no-receipt", "Body": body()},
        {**message("bad-count", body()), "Attributes": {"ApproximateReceiveCount": "x"}},
    ]
    good = events_of(300)
    mixed = [*good]
    for index, bad in enumerate(unreadable * 10):
        mixed.insert(index * 8, bad)
    with caplog.at_level(logging.WARNING, logger=receiver_module.__name__):
        status_queue.fill(mixed)
        events = received(receiver, 300, acknowledge=True)
        wait_until(lambda: len(status_queue.deleted_receipts()) >= 300, "the readable messages deleted")
    assert sorted(event.receipt for event in events) == sorted(m["ReceiptHandle"] for m in good)
    assert max(recorder.gauges[LOOPS]) > 1
    assert recorder.names().count("aws_batch_executor.status_events.unreadable") == 40
    assert sorted(status_queue.deleted_receipts()) == sorted(m["ReceiptHandle"] for m in good)
    assert receiver.answering


def test_when_the_queue_fails_the_extra_long_polls_stop_and_the_first_keeps_trying(
    receiver, status_queue, recorder
):
    status_queue.fill(endless_backlog())
    wait_until(lambda: recorder.gauges.get(LOOPS, [0])[-1] == CONCURRENCY, "grown under the backlog")
    status_queue.failing = client_error("AccessDenied", 403, "ReceiveMessage")
    wait_until(lambda: not receiver.answering and recorder.gauges[LOOPS][-1] == 1, "down to one loop")
    failed_at = status_queue.receives
    wait_until(lambda: status_queue.receives >= failed_at + 2, "the first loop kept trying")
    status_queue.failing = None
    wait_until(
        lambda: receiver.answering and recorder.gauges[LOOPS][-1] == CONCURRENCY,
        "grown again once the queue answers",
    )


def deleted_in_one_round(receiver, status_queue, count: int) -> tuple[list[str], list[list[str]]]:
    """Acknowledge ``count`` messages while a delete is under way, so they wait and go in one round:
    the messages, and the delete calls that round made."""
    status_queue.release_deletes = release = threading.Event()
    receiver.acknowledge(["first"])
    wait_until(lambda: status_queue.deletes_waiting == 1, "the first delete under way")
    waiting = [f"w{n}" for n in range(count)]
    receiver.acknowledge(waiting)
    release.set()
    wait_until(lambda: len(status_queue.deleted_receipts()) == count + 1, "every message deleted")
    return waiting, sorted(status_queue.deleted[1:])


def test_a_round_of_deletes_is_spread_over_as_many_calls_as_long_polls_run(receiver, status_queue, recorder):
    status_queue.fill(endless_backlog())
    wait_until(lambda: recorder.gauges.get(LOOPS, [0])[-1] == CONCURRENCY, "grown under the backlog")
    waiting, calls = deleted_in_one_round(receiver, status_queue, 35)
    assert calls == [waiting[0:10], waiting[10:20], waiting[20:30], waiting[30:]]


def test_a_burst_acknowledged_once_the_long_polls_shrank_is_deleted_side_by_side(receiver, status_queue):
    """A slow heartbeat may acknowledge a whole burst once one long poll is left: deleted by one
    caller, 1,000 messages would take 100 calls in a row, longer than the visibility timeout."""
    waiting, calls = deleted_in_one_round(receiver, status_queue, 400)
    assert calls == sorted(waiting[n : n + 100] for n in range(0, 400, 100))


@pytest.mark.parametrize(
    "count, parts, sizes",
    [(0, 4, []), (24, 1, [24]), (24, 8, [10, 10, 4]), (95, 4, [30, 30, 30, 5]), (40, 4, [10, 10, 10, 10])],
)
def test_deletes_are_spread_in_whole_batches_of_10_and_in_order(count, parts, sizes):
    receipts = [f"r{n}" for n in range(count)]
    slices = spread(receipts, parts)
    assert [len(part) for part in slices] == sizes
    assert [receipt for part in slices for receipt in part] == receipts
