"""Faults at the botocore layer of the executor's own AWS clients, drawn per call from the seed.

Every client an executor builds (Batch, the single-attempt SubmitJob client, CloudWatch Logs, S3 and
the status queue's SQS) gets a ``before-send`` handler. For the operations in ``FAULTED_OPERATIONS``
each call is, with the configured rates:

* throttled: answered instead of the server with its protocol's throttling error (429
  ``TooManyRequestsException``; S3: 503 ``SlowDown``);
* a server error: 500 ``ServerException`` (S3: ``InternalError``);
* a lost answer: really sent to the server, which processes it, then failed with a read timeout, as
  when the connection drops on the way back. botocore's own retries apply as they would.

An executor is *killed* by ``kill(generation)``: from then on every call of its clients fails before
reaching the server, as if its process had died (a call already on the wire still completes).
``burst`` throttles the first calls of an operation of one executor (a new scheduler whose look-ups
fail at first). Clients built outside ``owner`` (the soak's own tools, the CLI) get no faults.

The decisions come from one ``random.Random`` seeded from the run's seed, behind a lock: which call
gets which fault then depends on thread timing, but the stream of draws does not.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.aws.queue_gateway import StatusQueueGateway

FAULTED_OPERATIONS = frozenset(
    {
        "SubmitJob",
        "DescribeJobs",
        "ListJobs",
        "TerminateJob",
        "RegisterJobDefinition",
        "DescribeJobDefinitions",
        "TagResource",
        "PutObject",
        "GetObject",
        "DeleteObject",
        "DeleteObjects",
        "ReceiveMessage",
        "DeleteMessageBatch",
    }
)
THROTTLED, SERVER_ERROR, LOST_ANSWER, KILLED, BURST = (
    "throttled",
    "server_error",
    "lost_answer",
    "killed",
    "burst",
)
_GENERATION = "_soak_generation"
_INSTRUMENTED = "_soak_faults"


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._body


def error_response(service: str, kind: str, url: str) -> AWSResponse:
    """The answer AWS gives for a throttled or failed call, in the service's own protocol."""
    if service == "s3":
        code, status = ("SlowDown", 503) if kind in (THROTTLED, BURST) else ("InternalError", 500)
        body = f"<Error><Code>{code}</Code><Message>{code}</Message><RequestId>soak</RequestId></Error>"
        return AWSResponse(url, status, {"Content-Type": "application/xml"}, _Body(body.encode()))
    code, status = (
        ("TooManyRequestsException", 429) if kind in (THROTTLED, BURST) else ("ServerException", 500)
    )
    payload = json.dumps({"__type": code, "message": code}).encode()
    headers = {"x-amzn-ErrorType": code, "Content-Type": "application/x-amz-json-1.1"}
    return AWSResponse(url, status, headers, _Body(payload))


class ClientFaults:
    """Install with ``install()`` (undo with the returned callable); counts in ``counts()``."""

    def __init__(
        self, seed: int, throttle_rate: float, server_error_rate: float, lost_answer_rate: float
    ) -> None:
        self._random = random.Random(f"{seed}:aws-calls")
        self._thresholds = (
            (throttle_rate, THROTTLED),
            (throttle_rate + server_error_rate, SERVER_ERROR),
            (throttle_rate + server_error_rate + lost_answer_rate, LOST_ANSWER),
        )
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._killed: set[int] = set()
        self._bursts: dict[tuple[int, str], int] = {}
        self._counts: Counter[tuple[str, str]] = Counter()
        self._writes: dict[str, set[int]] = {}
        self.injecting = False

    @contextmanager
    def owner(self, generation: int) -> Iterator[None]:
        """Clients of gateways made meanwhile (an executor's ``start()``) belong to ``generation``."""
        self._owner = generation
        try:
            yield
        finally:
            self._owner = None

    def kill(self, generation: int) -> None:
        with self._lock:
            self._killed.add(generation)

    def burst(self, generation: int, operation: str, count: int) -> None:
        """Throttle the next ``count`` calls of ``operation`` by this executor's clients."""
        with self._lock:
            self._bursts[(generation, operation)] = count

    def counts(self) -> dict[str, dict[str, int]]:
        """Faults that happened: kind → operation → calls."""
        result: dict[str, dict[str, int]] = {}
        with self._lock:
            for (kind, operation), count in sorted(self._counts.items()):
                result.setdefault(kind, {})[operation] = count
        return result

    def writers(self) -> dict[str, set[int]]:
        """S3 key → the executors (generations) whose PutObject for it reached the server."""
        with self._lock:
            return {key: set(generations) for key, generations in self._writes.items()}

    def install(self) -> Callable[[], None]:
        """Patch the gateways so every client they build is instrumented; returns the undo."""
        patched: list[tuple[type, str, Any]] = []

        def patch(cls: type, name: str, make: Callable[[Any], Any]) -> None:
            original = cls.__dict__[name]
            patched.append((cls, name, original))
            setattr(cls, name, make(original))

        def init(original: Any) -> Any:
            def wrapped(gateway: Any, *args: Any, **kwargs: Any) -> None:
                original(gateway, *args, **kwargs)
                setattr(gateway, _GENERATION, self._owner)

            return wrapped

        def build(original: Any) -> Any:
            def wrapped(gateway: BatchGateway) -> dict[str, Any]:
                clients = original(gateway)
                for client in clients.values():
                    self._instrument(client, getattr(gateway, _GENERATION, None))
                return clients

            return wrapped

        def sqs(original: Any) -> Any:
            def wrapped(gateway: StatusQueueGateway) -> Any:
                client = original(gateway)
                self._instrument(client, getattr(gateway, _GENERATION, None))
                return client

            return wrapped

        patch(BatchGateway, "__init__", init)
        patch(BatchGateway, "_build_clients", build)
        patch(StatusQueueGateway, "__init__", init)
        patch(StatusQueueGateway, "_sqs", sqs)

        def undo() -> None:
            for cls, name, original in reversed(patched):
                setattr(cls, name, original)

        return undo

    def _instrument(self, client: Any, generation: int | None) -> None:
        with self._lock:
            if generation is None or getattr(client, _INSTRUMENTED, False):
                return
            setattr(client, _INSTRUMENTED, True)
        service = client.meta.service_model.service_name
        endpoint = client._endpoint

        def before_send(event_name: str, request: Any, **kwargs: Any) -> AWSResponse | None:
            operation = event_name.rsplit(".", 1)[-1]
            kind = self._decide(generation, operation)
            if kind == KILLED:
                raise EndpointConnectionError(endpoint_url=request.url)
            if kind in (THROTTLED, SERVER_ERROR, BURST):
                return error_response(service, kind, request.url)
            if operation == "PutObject":
                self._wrote(request.url, generation)
            if kind == LOST_ANSWER:
                answer = endpoint.http_session.send(request)
                answer.content  # noqa: B018 - read it all, so the connection goes back to the pool
                raise ReadTimeoutError(endpoint_url=request.url)
            return None

        client.meta.events.register("before-send", before_send)

    def _decide(self, generation: int, operation: str) -> str | None:
        with self._lock:
            if generation in self._killed:
                kind: str | None = KILLED
            elif self._bursts.get((generation, operation), 0) > 0:
                self._bursts[(generation, operation)] -= 1
                kind = BURST
            elif not self.injecting or operation not in FAULTED_OPERATIONS:
                return None
            else:
                draw = self._random.random()
                kind = next((name for limit, name in self._thresholds if draw < limit), None)
            if kind is not None:
                self._counts[(kind, operation)] += 1
            return kind

    def _wrote(self, url: str, generation: int) -> None:
        path = unquote(urlsplit(url).path).lstrip("/")
        _, _, key = path.partition("/")
        with self._lock:
            self._writes.setdefault(key, set()).add(generation)
