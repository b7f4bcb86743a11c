"""Fault injection at the botocore layer, on the executor's own clients.

Faults replace or follow a real HTTP exchange with the local Batch: a ``before-send`` handler answers
instead of the server (throttling, 5xx, expired credentials) or raises a transport error; an
``after-call`` handler raises after the server processed the request (a lost response) or rewrites
the parsed answer (duplicates, unknown statuses).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from airflow_batch_executor.aws.gateway import BatchGateway


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any):
        yield self._body


def error_response(status: int, code: str, message: str) -> AWSResponse:
    body = json.dumps({"__type": code, "message": message}).encode()
    headers = {"x-amzn-ErrorType": code, "Content-Type": "application/json"}
    return AWSResponse("http://127.0.0.1/fault", status, headers, _Raw(body))


FAULTS: dict[str, Callable[[], Any]] = {
    "throttle": lambda: error_response(429, "TooManyRequestsException", "Too Many Requests"),
    "server_error": lambda: error_response(500, "ServerException", "Internal server error"),
    "unavailable": lambda: error_response(503, "ServiceUnavailable", "Service unavailable"),
    "expired_credentials": lambda: error_response(
        403, "ExpiredTokenException", "The security token included in the request is expired"
    ),
    "connection_error": lambda: EndpointConnectionError(endpoint_url="http://127.0.0.1/fault"),
    "read_timeout": lambda: ReadTimeoutError(endpoint_url="http://127.0.0.1/fault"),
}


class BotocoreFaults:
    """Install with ``install(monkeypatch)``; then ``inject(operation, fault, count)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._before: list[list[Any]] = []
        self._after: list[list[Any]] = []
        self.clients_built = 0
        self.injected: list[tuple[str, str]] = []

    def install(self, monkeypatch) -> BotocoreFaults:
        original = BatchGateway._build_clients

        def build(gateway: BatchGateway) -> dict[str, Any]:
            clients = original(gateway)
            with self._lock:
                self.clients_built += 1
            for client in clients.values():
                client.meta.events.register("before-send", self._before_send)
                client.meta.events.register("after-call", self._after_call)
            return clients

        monkeypatch.setattr(BatchGateway, "_build_clients", build)
        return self

    def inject(self, operation: str, fault: str, count: int = 1) -> None:
        """Answer the next ``count`` calls of ``operation`` with ``fault`` instead of the server."""
        with self._lock:
            self._before.append([operation, fault, count])

    def hold(self, operation: str, release: threading.Event, count: int = 1_000_000) -> None:
        """Hold the next ``count`` calls of ``operation`` until ``release`` is set (a slow or hung API),
        then let them reach the server."""
        with self._lock:
            self._before.append([operation, release, count])

    def lose_response(self, operation: str, count: int = 1) -> None:
        """Let the next calls reach the server, then fail them as if the answer never arrived."""
        with self._lock:
            self._after.append(
                [operation, lambda parsed: (_ for _ in ()).throw(FAULTS["read_timeout"]()), count]
            )

    def rewrite(self, operation: str, change: Callable[[dict], None], count: int = 1) -> None:
        """Let the next calls succeed, with ``change(parsed)`` applied to the parsed answer."""
        with self._lock:
            self._after.append([operation, change, count])

    def _claim(self, rules: list[list[Any]], operation: str) -> Any:
        with self._lock:
            for rule in rules:
                if rule[0] == operation and rule[2] > 0:
                    rule[2] -= 1
                    return rule[1]
        return None

    def _before_send(self, event_name: str, **kwargs: Any) -> Any:
        operation = event_name.rsplit(".", 1)[-1]
        fault = self._claim(self._before, operation)
        if fault is None:
            return None
        self.injected.append((operation, fault if isinstance(fault, str) else "held"))
        if isinstance(fault, threading.Event):
            fault.wait()
            return None
        made = FAULTS[fault]()
        if isinstance(made, Exception):
            raise made
        return made

    def _after_call(self, event_name: str, parsed: dict, **kwargs: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        change = self._claim(self._after, operation)
        if change is not None:
            self.injected.append((operation, "after-call"))
            change(parsed)
