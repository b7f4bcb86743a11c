"""Buffers a job's output lines and ships them to moto's CloudWatch Logs in batches, and reads a
stream back whole.

The awslogs driver of a real container flushes every few seconds while the container runs;
doing the same (rather than writing once at exit, as moto does) lets a live log reader in the
executor see task output while the job is still RUNNING.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class CloudWatchLogSink:
    """Collects lines from several threads and writes them to one log stream on :meth:`flush`."""

    def __init__(self, logs_backend: Any, group: str, stream: str) -> None:
        self._backend = logs_backend
        self._group = group
        self._stream = stream
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._last_timestamp = 0
        logs_backend.ensure_log_group(group)
        logs_backend.ensure_log_stream(group, stream)

    def __call__(self, line: str) -> None:
        with self._lock:
            # PutLogEvents rejects a batch that goes back in time, so never let the clock do that.
            self._last_timestamp = max(self._last_timestamp, int(time.time() * 1000))
            self._pending.append({"timestamp": self._last_timestamp, "message": line})

    def flush(self) -> None:
        with self._lock:
            events, self._pending = self._pending, []
            if events:
                self._backend.put_log_events(self._group, self._stream, events)


def read_stream(logs: Any, group: str, stream: str) -> list[str]:
    """Every line of a log stream, oldest first, over as many pages as it takes (``logs``: a boto3
    CloudWatch Logs client); complete once its job ended."""
    lines: list[str] = []
    token = None
    while True:
        page = logs.get_log_events(
            logGroupName=group,
            logStreamName=stream,
            startFromHead=True,
            **({"nextToken": token} if token else {}),
        )
        lines += [event["message"] for event in page["events"]]
        if not page["events"] or page["nextForwardToken"] == token:
            return lines
        token = page["nextForwardToken"]
