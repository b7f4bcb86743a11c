"""AWS clients through the amazon provider's hook: one session per build, the connection's settings on
every client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.config import Config

from airflow_batch_executor.aws.clients import aws_client, aws_clients

ENDPOINT = "http://127.0.0.1:9"


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every session the hook makes; the connection points at an endpoint nothing is sent to."""
    extra = {"region_name": "eu-west-1", "endpoint_url": ENDPOINT}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "extra": extra}))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    made: list[Any] = []
    real = AwsBaseHook.get_session

    def counted(self: AwsBaseHook, region_name: str | None = None, deferrable: bool = False) -> Any:
        made.append(real(self, region_name=region_name, deferrable=deferrable))
        return made[-1]

    monkeypatch.setattr(AwsBaseHook, "get_session", counted)
    return made


def test_clients_of_one_build_share_one_session_and_each_gets_its_own_config(sessions: list[Any]) -> None:
    one_try = Config(retries={"mode": "standard", "total_max_attempts": 1})
    five_tries = Config(retries={"mode": "standard", "total_max_attempts": 5})
    wanted = {"reads": ("batch", five_tries), "submit": ("batch", one_try), "s3": ("s3", five_tries)}

    clients = aws_clients("aws_default", None, wanted)

    assert len(sessions) == 1, "the connection is read and its credentials resolved once per build"
    assert {name: client.meta.service_model.service_name for name, client in clients.items()} == {
        "reads": "batch",
        "submit": "batch",
        "s3": "s3",
    }
    assert {client.meta.region_name for client in clients.values()} == {"eu-west-1"}
    assert {client.meta.endpoint_url for client in clients.values()} == {ENDPOINT}
    assert clients["submit"].meta.config.retries["total_max_attempts"] == 1
    assert clients["reads"].meta.config.retries["total_max_attempts"] == 5


def test_each_build_makes_a_session_of_its_own(sessions: list[Any]) -> None:
    """A rebuild after a credentials error must not reuse the session whose credentials failed."""
    aws_client("aws_default", None, "sqs", Config())
    aws_client("aws_default", None, "sqs", Config())
    assert len(sessions) == 2 and sessions[0] is not sessions[1]
