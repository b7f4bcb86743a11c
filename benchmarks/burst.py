"""Scenario ``burst``: N job-end events land on the status queue at once, as when a wide mapped task
ends together; how long until every one reaches the scheduler, with one long poll at a time
(``status_receive_concurrency`` 1) and with the receiver that scales its long polls.

Runs in the benchmark's own process, without a local Batch: the executor's own ``StatusEventReceiver``
and ``StatusQueueGateway`` (its requests, its deletes in batches of 10), reducer and ``JobTracker``,
over a stub SQS client (``stub_sqs.py``) whose every call takes ``latency`` seconds. One column:

1. N jobs are tracked as RUNNING; the receiver starts and long-polls the empty queue for a while.
2. At t0, one SUCCEEDED "Batch Job State Change" event per job lands on the queue at once.
3. Every ``heartbeat_interval`` the scheduler's side drains what was received and handles it as
   ``JobSupervisor`` does: it looks the job up, asks the reducer whether the event is news, applies
   news (the finished job stops being tracked) and acknowledges the receipts (the message of a job no
   longer tracked only once it was received 10 times). A job's latency runs from t0 to the drain
   that finished it.
4. Then it goes on draining until every message is deleted and one long poll is left (each moment
   is measured from t0), and stops the receiver.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from airflow_batch_executor.aws.queue_gateway import StatusQueueGateway
from airflow_batch_executor.job_contract import FINAL_STATUSES
from airflow_batch_executor.metrics import Metrics
from airflow_batch_executor.records import TrackedJob
from airflow_batch_executor.status.receiver import ReceivedEvent, StatusEventReceiver
from airflow_batch_executor.status.reducer import Novelty, novelty
from airflow_batch_executor.status.tracker import JobTracker, observe
from airflow_batch_executor.supervisor import UNTRACKED_EVENT_RECEIVES
from benchmarks.stub_sqs import StubSqs

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/airflow-batch-status"
QUIET_SECONDS = 0.5
"""How long the receiver long-polls the empty queue before the burst lands."""
SETTLE_SECONDS = 15.0
"""After the last event: how long to wait for every delete, and for one long poll to be left."""
LOOPS = "status_events.receive_loops"


class CountingMetrics(Metrics):
    """The executor's metrics, kept in memory: each gauge's values and each counter's total."""

    def __init__(self) -> None:
        super().__init__()
        self.gauges: dict[str, list[float]] = {}
        self.counts: dict[str, int] = {}

    def incr(self, name: str, count: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + count

    def gauge(self, name: str, value: float) -> None:
        self.gauges.setdefault(name, []).append(value)


class StubbedGateway(StatusQueueGateway):
    """The executor's gateway to the status queue, over the stub client."""

    def __init__(self, client: StubSqs) -> None:
        super().__init__("aws_default", None, QUEUE_URL)
        self._stub = client

    def _sqs(self) -> StubSqs:
        return self._stub


def job_id_of(index: int) -> str:
    return f"5f3c9a2e-{index:04x}-4d1b-9e7a-{index:012x}"


def job_end_event(index: int) -> str:
    """An SQS message body as EventBridge delivers a job's SUCCEEDED state change (its detail is the
    job's DescribeJobs record, about 1.5 KB here)."""
    name = f"airflow-bench-mapped-task-{index}-try1-a1b2c3d4"
    detail = {
        "jobArn": f"arn:aws:batch:us-east-1:123456789012:job/{job_id_of(index)}",
        "jobName": name,
        "jobId": job_id_of(index),
        "jobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/airflow",
        "status": "SUCCEEDED",
        "attempts": [
            {
                "container": {"exitCode": 0, "logStreamName": f"airflow-worker/default/{index:032x}"},
                "startedAt": 1_765_000_000_000 + index,
                "stoppedAt": 1_765_000_060_000 + index,
                "statusReason": "Essential container in task exited",
            }
        ],
        "statusReason": "Essential container in task exited",
        "createdAt": 1_764_999_990_000 + index,
        "startedAt": 1_765_000_000_000 + index,
        "stoppedAt": 1_765_000_060_000 + index,
        "dependsOn": [],
        "jobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/airflow-worker:7",
        "parameters": {},
        "container": {
            "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/airflow:3.1.8",
            "command": ["python", "-m", "airflow_batch_executor.in_job.bootstrap", f"s3://w/{index}"],
            "exitCode": 0,
            "logStreamName": f"airflow-worker/default/{index:032x}",
            "resourceRequirements": [{"value": "1", "type": "VCPU"}, {"value": "2048", "type": "MEMORY"}],
        },
        "tags": {
            "airflow.dag_id": "bench",
            "airflow.task_id": "mapped_task",
            "airflow.map_index": str(index),
            "airflow.try_number": "1",
        },
        "platformCapabilities": ["FARGATE"],
    }
    return json.dumps(
        {
            "version": "0",
            "id": f"event-{index}",
            "detail-type": "Batch Job State Change",
            "source": "aws.batch",
            "account": "123456789012",
            "time": "2025-12-06T10:00:00Z",
            "region": "us-east-1",
            "resources": [detail["jobArn"]],
            "detail": detail,
        }
    )


def running_jobs(n: int) -> JobTracker:
    tracker = JobTracker()
    for index in range(n):
        job = TrackedJob(job_id_of(index), ("bench", index), f"job-{index}", "airflow", 1, time.time())
        observe(job, {"status": "RUNNING", "attempts": []})
        tracker.add(job)
    return tracker


def handle(
    tracker: JobTracker, received: list[ReceivedEvent], counts: dict[str, int]
) -> tuple[list[str], list[str]]:
    """As ``JobSupervisor._on_status_events``: (job ids finished, receipts to acknowledge)."""
    finished, done = [], []
    for item in received:
        job = tracker.get(item.event.job_id)
        if job is None:
            counts["untracked"] += 1
            if item.receive_count >= UNTRACKED_EVENT_RECEIVES:
                done.append(item.receipt)
            continue
        done.append(item.receipt)
        if novelty(job.progress, job.status, item.event) is not Novelty.NEWS:
            counts["not_news"] += 1
            continue
        observe(job, item.event.record)
        if job.status in FINAL_STATUSES:
            tracker.pop(job.job_id)
            finished.append(job.job_id)
    return finished, done


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def run_column(
    column: str,
    n: int,
    concurrency: int,
    latency: float,
    heartbeat_interval: float,
    visibility_timeout: float,
    time_limit: float,
) -> dict[str, Any]:
    """One column: the measurements of N events landing at once, with at most ``concurrency`` long polls."""
    bodies = [job_end_event(index) for index in range(n)]
    tracker = running_jobs(n)
    sqs = StubSqs(latency, visibility_timeout)
    metrics = CountingMetrics()
    receiver = StatusEventReceiver(StubbedGateway(sqs), metrics, concurrency=concurrency)
    receiver.start()
    time.sleep(QUIET_SECONDS)
    counts = {"untracked": 0, "not_news": 0}
    finished_at: dict[str, float] = {}
    drains: list[float] = []
    t0 = time.monotonic()
    sqs.send_all(bodies)
    while len(finished_at) < n and time.monotonic() - t0 < time_limit:
        began = time.monotonic()
        finished, done = handle(tracker, receiver.results(), counts)
        receiver.acknowledge(done)
        for job_id in finished:
            finished_at[job_id] = began - t0
        drains.append(time.monotonic() - began)
        time.sleep(max(0.0, heartbeat_interval - (time.monotonic() - began)))
    all_seen = max(finished_at.values()) if len(finished_at) == n else None
    all_deleted = one_loop = None
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline and (all_deleted is None or one_loop is None):
        _, done = handle(tracker, receiver.results(), counts)
        receiver.acknowledge(done)
        since = time.monotonic() - t0
        if all_deleted is None and sqs.deleted >= n:
            all_deleted = since
        if one_loop is None and metrics.gauges[LOOPS][-1] == 1 and sqs.receiving <= 1:
            one_loop = since
        time.sleep(heartbeat_interval)
    receiver.stop()
    sqs.close()
    latencies = list(finished_at.values())
    return {
        "executor": column,
        "n": n,
        "concurrency": concurrency,
        "finished": all_seen is not None,
        "time_limit": time_limit,
        "all_at_scheduler_seconds": all_seen,
        "at_scheduler": len(finished_at),
        "latency_median": statistics.median(latencies) if latencies else None,
        "latency_p95": percentile(latencies, 0.95),
        "deleted": sqs.deleted,
        "all_deleted_seconds": all_deleted,
        "one_long_poll_again_seconds": one_loop,
        "receive_loops_most": max(metrics.gauges[LOOPS]),
        "receive_loops_last": metrics.gauges[LOOPS][-1],
        "receives_side_by_side_most": sqs.most_receiving,
        "receive_calls": sqs.receive_calls,
        "empty_receives": sqs.empty_receives,
        "delete_calls": sqs.delete_calls,
        "refused_deletes": sqs.refused_deletes,
        "redelivered": sqs.redelivered,
        "untracked": counts["untracked"],
        "not_news": counts["not_news"],
        "received": metrics.counts.get("status_events.received", 0),
        "unreadable": metrics.counts.get("status_events.unreadable", 0),
        "longest_drain": max(drains, default=None),
    }
