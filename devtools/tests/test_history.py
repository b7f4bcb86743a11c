"""The history the local Batch records itself: submissions, attempts, outcomes, terminations and the
workload objects written, read and removed (with S3's verdict on conditional writes)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError
from waiting import events_of, wait_for_final, wait_for_status

from batch_devtools.local_batch import LocalBatch, LocalBatchControl


@pytest.fixture
def s3(local_batch: LocalBatch) -> Any:
    return local_batch.client("s3")


@pytest.fixture
def bucket(local_batch: LocalBatch) -> str:
    return local_batch.environment.workload_bucket


def object_events(lb: LocalBatch, key: str) -> list[dict[str, Any]]:
    return [e for e in lb.history() if e["event"].startswith("object_") and e["key"] == key]


def test_a_job_leaves_its_submission_attempt_and_outcome(local_batch: LocalBatch, batch: Any) -> None:
    local_batch.settings.step_delay = 0  # the job starts at once: its submission is still recorded first
    command = ["python", "-c", "print(1)"]
    job_id = batch.submit_job(
        jobName="recorded-job",
        jobQueue=local_batch.job_queue,
        jobDefinition=local_batch.job_definition,
        containerOverrides={"command": command},
    )["jobId"]
    wait_for_status(batch, job_id)

    entries = events_of(local_batch, job_id)

    assert [e["event"] for e in entries] == ["submit", "attempt_started", "job_final"]
    submit, started, final = entries
    assert {k: submit[k] for k in ("jobName", "jobQueue", "jobDefinition", "command")} == {
        "jobName": "recorded-job",
        "jobQueue": local_batch.job_queue,
        "jobDefinition": local_batch.job_definition,
        "command": command,
    }
    assert started["attempt"] == 1 and (final["status"], final["attempts"]) == ("SUCCEEDED", 1)
    assert submit["at"] <= started["at"] <= final["at"]


def test_the_history_is_read_from_an_index_on(local_batch: LocalBatch, batch: Any) -> None:
    seen = len(local_batch.history())
    job_id = batch.submit_job(
        jobName="read-on",
        jobQueue=local_batch.job_queue,
        jobDefinition=local_batch.job_definition,
        containerOverrides={"command": ["python", "-c", "print(1)"]},
    )["jobId"]
    wait_for_status(batch, job_id)
    wait_for_final(local_batch, job_id)

    newer = local_batch.history(since=seen)

    assert newer == local_batch.history()[seen : seen + len(newer)]
    assert {"submit", "job_final"} <= {e["event"] for e in newer if e.get("jobId") == job_id}
    assert local_batch.history(since=len(local_batch.history())) == []


def test_terminations_are_recorded_with_the_status_they_found(local_batch: LocalBatch, batch: Any) -> None:
    # A minute in SUBMITTED: the terminate surely finds the job there, however slow the machine is, and
    # it wakes the job at once (a stopped job's waits end as soon as it is stopped).
    local_batch.settings.step_delay = 60
    job_id = batch.submit_job(
        jobName="early-stop",
        jobQueue=local_batch.job_queue,
        jobDefinition=local_batch.job_definition,
        containerOverrides={"command": ["python", "-c", "print(1)"]},
    )["jobId"]

    batch.terminate_job(jobId=job_id, reason="first")
    wait_for_final(local_batch, job_id)
    batch.terminate_job(jobId=job_id, reason="again")

    terminations = [(e["reason"], e["status"]) for e in events_of(local_batch, job_id, "terminate")]
    assert terminations == [("first", "SUBMITTED"), ("again", "FAILED")]


def test_puts_are_recorded_with_their_etag_token_conditions_and_verdict(
    local_batch: LocalBatch, s3: Any, bucket: str
) -> None:
    key = f"workloads/{uuid.uuid4().hex}.json"
    first = s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({"token": "tok-1", "ti": {}}).encode())
    with pytest.raises(ClientError) as exists:
        s3.put_object(Bucket=bucket, Key=key, Body=b'{"token": "tok-2"}', IfNoneMatch="*")
    with pytest.raises(ClientError) as changed:
        s3.put_object(Bucket=bucket, Key=key, Body=b'{"token": "tok-3"}', IfMatch='"not-the-etag"')
    refreshed = s3.put_object(Bucket=bucket, Key=key, Body=b'{"token": "tok-4"}', IfMatch=first["ETag"])
    s3.put_object(Bucket=bucket, Key=key, Body=b"not json")

    puts = object_events(local_batch, key)

    assert exists.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert changed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert [
        (p["token"], p["ifMatch"], p["ifNoneMatch"], p["accepted"], p["httpStatus"], p["etag"]) for p in puts
    ] == [
        ("tok-1", None, None, True, 200, first["ETag"]),
        ("tok-2", None, "*", False, 412, None),
        ("tok-3", '"not-the-etag"', None, False, 412, None),
        ("tok-4", first["ETag"], None, True, 200, refreshed["ETag"]),
        (None, None, None, True, 200, puts[-1]["etag"]),
    ]
    assert puts[-1]["etag"] and all(p["bucket"] == bucket for p in puts)
    assert {"tok-1", "tok-2", "tok-3", "tok-4"} <= set(local_batch.workload_tokens())


def test_reads_and_removals_say_whether_the_object_was_there(
    local_batch: LocalBatch, s3: Any, bucket: str
) -> None:
    key, other = f"gone/{uuid.uuid4().hex}.json", f"gone/{uuid.uuid4().hex}.json"
    s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    s3.get_object(Bucket=bucket, Key=key)
    s3.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key=key)
    s3.delete_object(Bucket=bucket, Key=key)
    s3.put_object(Bucket=bucket, Key=other, Body=b"{}")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}, {"Key": other}]})

    assert [(e["event"], e.get("found")) for e in object_events(local_batch, key)] == [
        ("object_put", None),
        ("object_get", True),
        ("object_delete", True),
        ("object_get", False),
        ("object_delete", False),
        ("object_delete", False),
    ]
    assert [(e["event"], e.get("found"), e.get("operation")) for e in object_events(local_batch, other)][
        1:
    ] == [("object_delete", True, "deleteobjects")]


def test_history_and_tokens_over_http(local_batch: LocalBatch, s3: Any, bucket: str) -> None:
    control = LocalBatchControl(local_batch.endpoint_url)
    s3.put_object(Bucket=bucket, Key="http/one.json", Body=b'{"token": "over-http"}')

    assert control.history()[-1]["key"] == "http/one.json"
    assert "over-http" in control.workload_tokens()
    control.clear_history()
    control.clear_workload_tokens()
    assert control.history() == [] and control.workload_tokens() == []
    assert local_batch.history() == [] and local_batch.workload_tokens() == []
