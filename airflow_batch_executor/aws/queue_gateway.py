"""The only module that talks to SQS: the status queue that Batch job state-change events arrive on.

Its client comes from :func:`~.clients.aws_client`, like :class:`~.gateway.BatchGateway`'s, so the
executor's Airflow connection (its team's, in multi-team mode), role and region apply to the queue too.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from botocore.config import Config

from airflow_batch_executor.aws.clients import aws_client

RECEIVE_MAX_MESSAGES = 10
DELETE_MAX_ENTRIES = 10
WAIT_SECONDS = 10
BOTOCORE_POOL_CONNECTIONS = 10
"""botocore's own default size of a client's connection pool."""


class StatusQueueGateway:
    """ReceiveMessage and DeleteMessageBatch on one queue, for one AWS connection."""

    def __init__(
        self,
        conn_id: str,
        region_name: str | None,
        queue_url: str,
        team: str | None = None,
        concurrency: int = 1,
    ) -> None:
        """``concurrency``: the most receives that run side by side, each beside one delete call."""
        self.queue_url = queue_url
        self._conn_id = conn_id
        self._region_name = region_name
        self._team = team
        self._connections = max(BOTOCORE_POOL_CONNECTIONS, 2 * concurrency)
        self._lock = threading.Lock()
        self._client: Any = None

    def _sqs(self) -> Any:
        with self._lock:
            if self._client is None:
                config = Config(
                    connect_timeout=5,
                    read_timeout=WAIT_SECONDS + 10,
                    retries={"mode": "standard", "total_max_attempts": 2},
                    max_pool_connections=self._connections,
                )
                self._client = aws_client(self._conn_id, self._region_name, "sqs", config, self._team)
            return self._client

    def receive(self, wait_seconds: int = WAIT_SECONDS) -> list[dict[str, Any]]:
        """Up to 10 messages, waiting up to ``wait_seconds`` for the first (a long poll)."""
        answer = self._sqs().receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=RECEIVE_MAX_MESSAGES,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["ApproximateReceiveCount"],
        )
        return answer.get("Messages", [])

    def delete(self, receipt_handles: Sequence[str]) -> int:
        """Delete messages in batches of 10; returns how many SQS refused (they come back later)."""
        refused = 0
        for start in range(0, len(receipt_handles), DELETE_MAX_ENTRIES):
            batch = receipt_handles[start : start + DELETE_MAX_ENTRIES]
            entries = [{"Id": str(index), "ReceiptHandle": handle} for index, handle in enumerate(batch)]
            answer = self._sqs().delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            refused += len(answer.get("Failed", []))
        return refused
