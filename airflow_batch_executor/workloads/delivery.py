"""Delivering an array child's workload once its container has started.

An array job's children share one command, one environment and one job role; only their index
differs, and every sibling knows every index. A workload object a child could find from what it was
given, a sibling could find too. What only one child has is its ECS task: Batch starts each container
attempt as a task and reports its ARN (``container.taskArn``) from STARTING on, and inside the
container the task metadata endpoint gives the same ARN. So no workload is written at submission;
once a child is seen started, its workload goes to ``<directory><index>.<task id>.json``
(:func:`~airflow_batch_executor.job_contract.delivered_key`), which a sibling cannot name without
``ecs:ListTasks``, ``batch:DescribeJobs`` or ``s3:ListBucket``, none of which a job role needs.

Before the workload, a marker is written where none is (S3 ``If-None-Match: *``): one per child,
holding the task ARN it went to. Of two schedulers racing, or a restarted one that does not know what
its predecessor delivered, only the first delivers, and only to that attempt; any other attempt of
the child is refused (:func:`~airflow_batch_executor.rules.delivery.decide`). A crash between the
marker and the workload leaves the child without one: it waits, ends with ``EXIT_NOT_DELIVERED``
before its task started, and its try is submitted again as a job of its own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from botocore.exceptions import ClientError

from airflow_batch_executor.aws.errors import precondition_failed
from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.job_contract import delivered_key, delivered_marker_key, split_s3_uri


@dataclass(frozen=True)
class Delivered:
    """Where a child's workload went: ``task_arn`` is the attempt that received it (this call's, or an
    earlier delivery's when ``by_us`` is False)."""

    task_arn: str
    by_us: bool
    object_uri: str | None
    """The object written (None when an earlier delivery had been made): removed once the child ends."""


class Deliverer:
    """Writes array children's workloads, each at most once per child (on object worker threads)."""

    def __init__(self, gateway: BatchGateway, *, kms_key_id: str | None) -> None:
        self._gateway = gateway
        self._kms_key_id = kms_key_id
        self._lock = threading.Lock()
        self._markers: dict[tuple[str, str], str] = {}
        """Markers this executor wrote, with their task ARN: a delivery to that task retried after its
        workload's write failed goes on to write it, where another writer's marker means that writer
        delivers (or delivered), and any other task of the child gets nothing."""

    def deliver(self, directory_uri: str, index: int, task_arn: str, body: bytes) -> Delivered:
        """Give child ``index`` of the array at ``directory_uri`` its workload, for the attempt running
        as ``task_arn``, unless an attempt of that child was given it already. Errors other than S3's
        refusal of the marker propagate: the caller tries again while the child waits."""
        bucket, directory_key = split_s3_uri(directory_uri)
        key = delivered_key(directory_key, index, task_arn)
        marker = delivered_marker_key(directory_key, index)
        with self._lock:
            ours = self._markers.get((bucket, marker))
        if ours is not None and ours != task_arn:
            return Delivered(ours, by_us=False, object_uri=None)
        if ours is None:
            try:
                self._gateway.put_object(bucket, marker, task_arn.encode(), self._kms_key_id, if_absent=True)
            except ClientError as error:
                if not precondition_failed(error):
                    raise
                earlier, _ = self._gateway.get_object(bucket, marker)
                return Delivered(earlier.decode(), by_us=False, object_uri=None)
            with self._lock:
                self._markers[(bucket, marker)] = task_arn
        try:
            self._gateway.put_object(bucket, key, body, self._kms_key_id, if_absent=True)
        except ClientError as error:
            if not precondition_failed(error):  # written by this call's earlier try, whose answer was lost
                raise
        return Delivered(task_arn, by_us=True, object_uri=f"s3://{bucket}/{key}")
