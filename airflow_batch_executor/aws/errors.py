"""How a failed AWS API call is classified: retry it, reconnect first, or give up on the request.

SubmitJob has no idempotency token, so "the request may have been processed" (a read timeout, a
dropped connection) is its own class: the next attempt must first look for the job by name.
"""

from __future__ import annotations

import enum

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)


class ApiErrorKind(enum.Enum):
    THROTTLED = "throttled"
    SERVER = "server"
    NETWORK = "network"
    AMBIGUOUS = "ambiguous"
    CREDENTIALS = "credentials"
    REJECTED = "rejected"

    @property
    def retryable(self) -> bool:
        return self is not ApiErrorKind.REJECTED


THROTTLING_CODES = frozenset(
    {"TooManyRequestsException", "ThrottlingException", "Throttling", "RequestLimitExceeded", "SlowDown"}
)
CREDENTIAL_CODES = frozenset(
    {
        "ExpiredTokenException",
        "ExpiredToken",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "RequestExpired",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
    }
)
_CREDENTIAL_EXCEPTIONS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)
_AMBIGUOUS_EXCEPTIONS = (ReadTimeoutError, ConnectionClosedError)
_NETWORK_EXCEPTIONS = (EndpointConnectionError, ConnectTimeoutError)


def classify_api_error(error: BaseException) -> ApiErrorKind:
    """The retry class of an exception raised by a boto3 call."""
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in THROTTLING_CODES or status == 429:
            return ApiErrorKind.THROTTLED
        if code in CREDENTIAL_CODES:
            return ApiErrorKind.CREDENTIALS
        if status >= 500 or code in ("ServerException", "InternalFailure", "ServiceUnavailable"):
            return ApiErrorKind.SERVER
        return ApiErrorKind.REJECTED
    if isinstance(error, _CREDENTIAL_EXCEPTIONS):
        return ApiErrorKind.CREDENTIALS
    if isinstance(error, _AMBIGUOUS_EXCEPTIONS):
        return ApiErrorKind.AMBIGUOUS
    if isinstance(error, _NETWORK_EXCEPTIONS):
        return ApiErrorKind.NETWORK
    if isinstance(error, NoRegionError):
        return ApiErrorKind.REJECTED
    if isinstance(error, (BotoCoreError, OSError)):
        return ApiErrorKind.NETWORK
    return ApiErrorKind.REJECTED


def precondition_failed(error: BaseException) -> bool:
    """S3 refused a conditional write (``If-None-Match: *``): the object was already there."""
    return isinstance(error, ClientError) and str(error.response.get("Error", {}).get("Code")) in {
        "PreconditionFailed",
        "412",
    }


def describe_api_error(error: BaseException) -> str:
    """One line for logs and task event logs."""
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        return f"{err.get('Code', 'ClientError')}: {err.get('Message', str(error))}"
    return f"{type(error).__name__}: {error}"
