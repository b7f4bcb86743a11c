"""The soak's faults on the executor's own AWS clients, through the local Batch: answered instead of the
server, answers lost after the server acted, and an executor killed for good."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from airflow_batch_executor.aws.errors import ApiErrorKind, classify_api_error
from airflow_batch_executor.aws.gateway import BatchGateway
from batch_devtools.local_batch import LocalBatch
from batch_devtools.soak.client_faults import BURST, KILLED, LOST_ANSWER, THROTTLED, ClientFaults

READ_ATTEMPTS = 2


@pytest.fixture
def connection(local_batch: LocalBatch, monkeypatch: pytest.MonkeyPatch) -> LocalBatch:
    """The executor's connection and settings pointing at the local Batch, as the soak sets them."""
    for name, value in local_batch.settings_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps(
            {
                "conn_type": "aws",
                "extra": {"region_name": local_batch.region, "endpoint_url": local_batch.endpoint_url},
            }
        ),
    )
    local_batch.clear_api_calls()
    return local_batch


def installed(faults: ClientFaults) -> Iterator[ClientFaults]:
    undo = faults.install()
    try:
        yield faults
    finally:
        undo()


@pytest.fixture
def throttling() -> Iterator[ClientFaults]:
    yield from installed(ClientFaults(1, throttle_rate=1.0, server_error_rate=0.0, lost_answer_rate=0.0))


@pytest.fixture
def losing() -> Iterator[ClientFaults]:
    yield from installed(ClientFaults(1, throttle_rate=0.0, server_error_rate=0.0, lost_answer_rate=1.0))


def gateway(faults: ClientFaults, generation: int | None = 0) -> BatchGateway:
    """An executor's gateway (two attempts per read, to keep botocore's backoff short), or the
    soak's own (``generation`` None)."""
    if generation is None:
        return BatchGateway("aws_default", None, read_attempts=READ_ATTEMPTS)
    with faults.owner(generation):
        return BatchGateway("aws_default", None, read_attempts=READ_ATTEMPTS)


def submit(lb: LocalBatch, made: BatchGateway, name: str) -> str:
    return made.submit_job(
        {
            "jobName": name,
            "jobQueue": lb.job_queue,
            "jobDefinition": lb.job_definition,
            "containerOverrides": {"command": ["python", "-c", "print(1)"]},
        }
    )


def test_a_throttled_call_never_reaches_the_server(connection: LocalBatch, throttling: ClientFaults) -> None:
    throttling.injecting = True

    with pytest.raises(ClientError) as raised:
        gateway(throttling).describe_jobs(["some-job"])

    assert classify_api_error(raised.value) is ApiErrorKind.THROTTLED
    assert "describejobs" not in connection.api_calls()
    assert throttling.counts()[THROTTLED]["DescribeJobs"] == READ_ATTEMPTS, (
        "botocore's retries were throttled too"
    )


def test_a_throttled_s3_call_speaks_s3(connection: LocalBatch, throttling: ClientFaults) -> None:
    throttling.injecting = True

    with pytest.raises(ClientError) as raised:
        gateway(throttling).put_object(connection.environment.workload_bucket, "soak/throttled.json", b"{}")

    assert raised.value.response["Error"]["Code"] == "SlowDown"
    assert classify_api_error(raised.value) is ApiErrorKind.THROTTLED


def test_a_lost_answer_comes_after_the_server_acted(connection: LocalBatch, losing: ClientFaults) -> None:
    losing.injecting = True

    with pytest.raises(ReadTimeoutError):
        submit(connection, gateway(losing), "soak-lost-answer")

    [job] = [entry for entry in connection.history() if entry.get("jobName") == "soak-lost-answer"]
    assert job["event"] == "submit", "the job exists although its SubmitJob failed"
    assert losing.counts()[LOST_ANSWER] == {"SubmitJob": 1}, "SubmitJob is sent once (no botocore retry)"


def test_a_killed_executor_reaches_nothing_and_its_successor_starts_throttled(
    connection: LocalBatch, throttling: ClientFaults
) -> None:
    old, tools = gateway(throttling, 0), gateway(throttling, None)
    throttling.kill(0)
    throttling.burst(1, "ListJobs", READ_ATTEMPTS)
    new = gateway(throttling, 1)

    with pytest.raises(EndpointConnectionError):
        submit(connection, old, "soak-killed")
    with pytest.raises(ClientError) as throttled:
        new.list_jobs(connection.job_queue, name_pattern="soak-killed")
    found: list[Any] = tools.list_jobs(connection.job_queue, name_pattern="soak-killed")

    assert found == [] and "submitjob" not in connection.api_calls()
    assert classify_api_error(throttled.value) is ApiErrorKind.THROTTLED
    assert new.list_jobs(connection.job_queue, name_pattern="soak-killed") == [], "the burst is used up"
    counts = throttling.counts()
    assert counts[KILLED] == {"SubmitJob": 1} and counts[BURST] == {"ListJobs": READ_ATTEMPTS}
    assert THROTTLED not in counts, "nothing is drawn at random until the soak starts injecting"


def test_puts_that_reach_s3_are_attributed_to_their_executor(
    connection: LocalBatch, losing: ClientFaults
) -> None:
    bucket = connection.environment.workload_bucket
    gateway(losing, 3).put_object(bucket, "soak/attributed.json", b"{}")

    assert losing.writers() == {"soak/attributed.json": {3}}
