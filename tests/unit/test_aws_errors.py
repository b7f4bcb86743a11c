"""How AWS errors are read: which are throttling, transient, lost answers or the caller's fault."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from airflow_batch_executor.aws.errors import ApiErrorKind, classify_api_error, describe_api_error


def err(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


@pytest.mark.parametrize(
    "error, kind",
    [
        (err("TooManyRequestsException", 429), ApiErrorKind.THROTTLED),
        (err("ThrottlingException", 400), ApiErrorKind.THROTTLED),
        (err("ExpiredTokenException", 400), ApiErrorKind.CREDENTIALS),
        (err("UnrecognizedClientException", 403), ApiErrorKind.CREDENTIALS),
        (NoCredentialsError(), ApiErrorKind.CREDENTIALS),
        (err("ServerException", 500), ApiErrorKind.SERVER),
        (err("Whatever", 503), ApiErrorKind.SERVER),
        (ReadTimeoutError(endpoint_url="u"), ApiErrorKind.AMBIGUOUS),
        (ConnectTimeoutError(endpoint_url="u"), ApiErrorKind.NETWORK),
        (EndpointConnectionError(endpoint_url="u"), ApiErrorKind.NETWORK),
        (err("ClientException", 400), ApiErrorKind.REJECTED),
        (ValueError("bug"), ApiErrorKind.REJECTED),
    ],
)
def test_api_error_classes(error, kind):
    assert classify_api_error(error) is kind
    assert kind.retryable is (kind is not ApiErrorKind.REJECTED)
    assert describe_api_error(error)
