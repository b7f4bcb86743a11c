""" "Batch Job State Change" events from the local Batch: AWS's envelope, and unreliable on purpose."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pytest
from waiting import TIMEOUT, describe, drain, take_messages, wait_for_status, wait_until

from batch_devtools.local_batch import CAPACITY_REASON, LocalBatch
from batch_devtools.local_batch.control import LocalBatchControl

PLAIN = ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]


@pytest.fixture
def events_on(local_batch: LocalBatch) -> LocalBatch:
    local_batch.settings.publish_events = True
    drain(local_batch, until=lambda _: False, timeout=0.5)
    return local_batch


def run(lb: LocalBatch, name: str) -> str:
    return lb.client("batch").submit_job(
        jobName=name,
        jobQueue=lb.job_queue,
        jobDefinition=lb.job_definition,
        containerOverrides={"command": [sys.executable, "-c", "print('hi')"]},
    )["jobId"]


def statuses_of(messages: list[dict[str, Any]], job_id: str) -> list[str]:
    return [m["detail"]["status"] for m in messages if m["detail"]["jobId"] == job_id]


def ended(job_id: str, count: int = 1) -> Any:
    return lambda got: statuses_of(got, job_id).count("SUCCEEDED") >= count


def test_each_status_change_is_published_in_the_aws_envelope(events_on: LocalBatch) -> None:
    job_id = run(events_on, "events-plain")
    messages = drain(events_on, ended(job_id))
    assert statuses_of(messages, job_id) == PLAIN
    last = messages[-1]
    assert set(last) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }
    assert last["detail-type"] == "Batch Job State Change" and last["source"] == "aws.batch"
    assert last["resources"] == [last["detail"]["jobArn"]] and last["region"] == events_on.region
    [described] = events_on.client("batch").describe_jobs(jobs=[job_id])["jobs"]
    assert last["detail"]["container"]["exitCode"] == described["container"]["exitCode"] == 0
    assert last["detail"]["attempts"] == described["attempts"]


def test_nothing_is_published_while_publishing_is_off(local_batch: LocalBatch) -> None:
    drain(local_batch, until=lambda _: False, timeout=0.5)
    job_id = run(local_batch, "events-off")
    assert wait_for_status(local_batch.client("batch"), job_id)["status"] == "SUCCEEDED"
    assert statuses_of(drain(local_batch, until=lambda _: False, timeout=0.5), job_id) == []


def test_dropped_events_never_arrive(events_on: LocalBatch) -> None:
    events_on.faults.drop_events("events-drop*", count=None, status="RUNNING")
    job_id = run(events_on, "events-drop")
    assert statuses_of(drain(events_on, ended(job_id)), job_id) == [s for s in PLAIN if s != "RUNNING"]


def test_duplicated_events_arrive_as_often_as_asked(events_on: LocalBatch) -> None:
    events_on.faults.duplicate_events("events-dup*", count=None, status="SUCCEEDED", copies=3)
    job_id = run(events_on, "events-dup")
    assert statuses_of(drain(events_on, ended(job_id, 3)), job_id) == [*PLAIN, "SUCCEEDED", "SUCCEEDED"]


def test_a_reordered_event_arrives_after_the_jobs_next_one(events_on: LocalBatch) -> None:
    events_on.faults.reorder_events("events-swap*", count=1, status="RUNNABLE")
    job_id = run(events_on, "events-swap")
    statuses = statuses_of(drain(events_on, ended(job_id)), job_id)
    assert statuses == ["SUBMITTED", "PENDING", "STARTING", "RUNNABLE", "RUNNING", "SUCCEEDED"]


def test_an_event_delayed_until_a_later_status_arrives_right_after_it(events_on: LocalBatch) -> None:
    events_on.faults.delay_events("events-after*", status="PENDING", after_status="RUNNING")
    job_id = run(events_on, "events-after")
    statuses = statuses_of(drain(events_on, ended(job_id)), job_id)
    assert statuses == ["SUBMITTED", "RUNNABLE", "STARTING", "RUNNING", "PENDING", "SUCCEEDED"]


def test_a_delayed_event_arrives_after_later_ones(events_on: LocalBatch) -> None:
    # The job is held in RUNNABLE, so the later event that overtakes the delayed one is RUNNABLE's,
    # published a step after PENDING: no process has to start (and exit) within the delay.
    events_on.faults.stuck_in_runnable(pattern="events-late*")
    control = LocalBatchControl(events_on.endpoint_url)
    control.add_fault("delay_events", pattern="events-late*", status="PENDING", seconds=3.0)
    assert control.faults()["delay_events"][0]["seconds"] == 3.0
    job_id = run(events_on, "events-late")
    messages = drain(events_on, lambda got: "PENDING" in statuses_of(got, job_id))
    assert statuses_of(messages, job_id) == ["SUBMITTED", "RUNNABLE", "PENDING"]

    batch = events_on.client("batch")
    wait_until(
        lambda: describe(batch, job_id).get("statusReason") == CAPACITY_REASON, f"job {job_id} is held"
    )
    assert events_on.release_stuck_jobs([job_id]) == [job_id]
    statuses = statuses_of(drain(events_on, ended(job_id)), job_id)
    assert statuses == ["STARTING", "RUNNING", "SUCCEEDED"]


def test_held_jobs_publish_without_being_read(events_on: LocalBatch) -> None:
    events_on.settings.job_mode = "hold"
    events_on.settings.hold_seconds = 0.3
    job_id = run(events_on, "events-held")
    statuses = statuses_of(
        drain(events_on, lambda got: sorted(statuses_of(got, job_id)) == sorted(PLAIN)), job_id
    )
    # A standard SQS queue does not promise order (moto may hand a message over one receive late);
    # the executor's reducer orders events itself, so what matters is that each status arrives once.
    assert sorted(statuses) == sorted(PLAIN)


def test_held_jobs_publish_each_status_as_it_begins_and_when_they_exit(events_on: LocalBatch) -> None:
    events_on.settings.job_mode = "hold"
    events_on.settings.step_delay = 0.2
    job_id = run(events_on, "events-held-steps")
    messages = drain(events_on, lambda got: "RUNNING" in statuses_of(got, job_id))
    assert statuses_of(messages, job_id) == PLAIN[:5]
    running = next(m for m in messages if m["detail"]["status"] == "RUNNING")["detail"]
    stopped = LocalBatchControl(events_on.endpoint_url).exit_jobs([job_id])[job_id]
    assert stopped is not None and stopped >= running["startedAt"]
    ended_event = drain(events_on, ended(job_id))[-1]["detail"]
    assert (ended_event["status"], ended_event["stoppedAt"]) == ("SUCCEEDED", stopped)


def test_many_held_running_jobs_leave_the_publisher_idle(events_on: LocalBatch) -> None:
    events_on.settings.job_mode = "hold"
    events_on.settings.step_delay = 0
    control = LocalBatchControl(events_on.endpoint_url)
    request = {"jobQueue": events_on.job_queue, "jobDefinition": events_on.job_definition}
    ids = control.create_jobs([{**request, "jobName": f"events-idle-{index}"} for index in range(100)])

    def all_running(got: list[dict[str, Any]]) -> bool:
        return {m["detail"]["jobId"] for m in got if m["detail"]["status"] == "RUNNING"} >= set(ids)

    assert all_running(drain(events_on, all_running, timeout=120))
    publisher = events_on.runtime.events
    assert publisher is not None and publisher.pending_changes == 0
    batch = events_on.client("batch")
    for job_id in ids:
        batch.terminate_job(jobId=job_id, reason="cleanup")


def drain_bodies(lb: LocalBatch, count: int, timeout: float = TIMEOUT) -> list[str]:
    """The next ``count`` raw message bodies of the status queue (deleted as read)."""
    sqs, bodies = lb.client("sqs"), []
    deadline = time.monotonic() + timeout
    while len(bodies) < count:
        assert time.monotonic() < deadline, f"only {len(bodies)} of {count} messages arrived"
        bodies.extend(take_messages(sqs, lb.status_queue_url))
        time.sleep(0.05)
    return bodies


def test_a_retried_job_publishes_every_transition_with_its_finished_attempts(events_on: LocalBatch) -> None:
    job_id = events_on.client("batch").submit_job(
        jobName="events-retried",
        jobQueue=events_on.job_queue,
        jobDefinition=events_on.job_definition,
        containerOverrides={"command": [sys.executable, "-c", "raise SystemExit(1)"]},
        retryStrategy={"attempts": 2},
    )["jobId"]

    messages = drain(events_on, lambda got: "FAILED" in statuses_of(got, job_id))
    details = [m["detail"] for m in messages if m["detail"]["jobId"] == job_id]

    assert [(d["status"], len(d["attempts"])) for d in details] == [
        *((status, 0) for status in PLAIN[:5]),
        ("RUNNABLE", 1),
        ("STARTING", 1),
        ("RUNNING", 1),
        ("FAILED", 2),
    ]
    assert "startedAt" not in details[5] and details[5]["attempts"][0]["container"]["exitCode"] == 1


def test_inline_jobs_publish_each_status_change(events_on: LocalBatch) -> None:
    events_on.settings.job_mode = "inline"
    workload = {"type": "ExecuteTask", "token": "t", "ti": {"dag_id": "d", "task_id": "t", "run_id": "r"}}
    job_id = events_on.client("batch").submit_job(
        jobName="events-inline",
        jobQueue=events_on.job_queue,
        jobDefinition=events_on.job_definition,
        containerOverrides={
            "command": [
                "python",
                "-m",
                "airflow.sdk.execution_time.execute_workload",
                "--json-string",
                json.dumps(workload),
            ]
        },
    )["jobId"]

    assert statuses_of(drain(events_on, ended(job_id)), job_id) == PLAIN


def test_malformed_messages_come_in_every_kind_about_the_latest_job(events_on: LocalBatch) -> None:
    job_id = run(events_on, "events-spoilt")
    drain(events_on, ended(job_id))
    LocalBatchControl(events_on.endpoint_url).add_fault("malformed_events", count=8)

    bodies = drain_bodies(events_on, 8)

    with pytest.raises(ValueError):
        json.loads(bodies[0])
    messages = [json.loads(body) for body in bodies[1:]]
    detail_not_object, status_list, status_unknown, id_missing, id_number, other_type, attempts = messages
    assert isinstance(detail_not_object["detail"], str)
    assert status_list["detail"]["status"] == ["SUCCEEDED"] and status_list["detail"]["jobId"] == job_id
    assert status_unknown["detail"]["status"] not in PLAIN + ["FAILED"]
    assert "jobId" not in id_missing["detail"] and id_number["detail"]["jobId"] == 12345
    assert other_type["detail-type"] != "Batch Job State Change" and other_type["source"] == "aws.batch"
    assert attempts["detail"]["attempts"] == "1" and attempts["detail"]["jobId"] == job_id
    assert events_on.faults.to_dict()["malformed_events"] == []


def test_messages_are_received_within_their_retention_period_only(local_batch: LocalBatch) -> None:
    """The SQS seam reads the retention period directly (moto recomputes every queue attribute per
    message); what it decides is unchanged: a message older than the retention period is dropped."""
    from moto.sqs.models import SQSBackend

    from batch_devtools.local_batch import seams

    sqs = local_batch.client("sqs")
    url = sqs.create_queue(QueueName="retention-check", Attributes={"MessageRetentionPeriod": "60"})[
        "QueueUrl"
    ]
    sqs.send_message(QueueUrl=url, MessageBody="fresh")
    assert SQSBackend.is_message_valid_based_on_retention_period is seams._within_retention

    [fresh] = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]
    assert fresh["Body"] == "fresh"

    queue = type("Queue", (), {"message_retention_period": 60})()
    backend = type("Backend", (), {"get_queue": lambda self, name: queue})()
    old = type("Message", (), {"sent_timestamp": (time.time() - 61) * 1000})()
    young = type("Message", (), {"sent_timestamp": (time.time() - 59) * 1000})()
    assert not seams._within_retention(backend, "retention-check", old)
    assert seams._within_retention(backend, "retention-check", young)
