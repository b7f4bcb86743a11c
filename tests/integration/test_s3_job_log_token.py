"""S3 mode with the installed Airflow's real Task SDK: the token a job receives never reaches its log.

Airflow 3.1's Task SDK logs ``Executing workload`` with the whole workload at start, and 3.1's
workload model prints the token (3.2 and later hide it). The job's bootstrap hides the token on every
version. Here the job runs the real bootstrap and the real Task SDK, which logs its start line and
then fails to reach the execution API (nothing listens at the test's 127.0.0.1:9): the task fails,
and what matters is the job's log, read whole from CloudWatch Logs and as the UI reads it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from types import SimpleNamespace

import jwt
import pytest

from airflow_batch_executor.aws.gateway import BatchGateway
from batch_devtools.local_batch.environment import WORKLOAD_BUCKET

from .helpers import MINTS, final_states, finished, pump, queue, whole_log, workload

JWT_SHAPED = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
TASK_SDK_RUN_SECONDS = 180.0
"""An upper bound for the Task SDK to start, retry the unreachable API and give up."""


@pytest.fixture
def real_sdk_s3_mode(batch_env, monkeypatch):
    """S3 workload transport under a prefix of its own; jobs run the installed Airflow's Task SDK."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__WORKLOAD_TRANSPORT", f"s3://{WORKLOAD_BUCKET}/{prefix}")
    return prefix


@pytest.fixture
def written_tokens(monkeypatch) -> list[str]:
    """The token of every workload object the executor writes, as the job will read it."""
    tokens: list[str] = []
    real_put = BatchGateway.put_object

    def spy(self, bucket: str, key: str, body: bytes, kms_key_id: str | None = None, **condition) -> str:
        if "token" in (written := json.loads(body)):  # a workload, not the health check's probe
            tokens.append(written["token"])
        return real_put(self, bucket, key, body, kms_key_id, **condition)

    monkeypatch.setattr(BatchGateway, "put_object", spy)
    return tokens


def test_the_real_task_sdk_runs_and_its_job_log_shows_no_token(
    make_executor, batch_env, real_sdk_s3_mode, written_tokens
):
    item = workload("tokened")
    # A token shaped like the ones Airflow signs (3.1 keeps the scheduler's; later versions re-sign).
    item = item.model_copy(update={"token": jwt.encode({"sub": str(item.ti.id)}, "k" * 32, "HS256")})
    model_prints_token = item.token in repr(item)
    executor = make_executor()
    queue(executor, item)
    events = pump(executor, finished(item.ti.key), timeout=TASK_SDK_RUN_SECONDS)
    assert final_states(events) == {item.ti.key: "failed"}  # the execution API is unreachable
    job_id = next(info for _, state, info in events if state == "running")
    assert written_tokens and all(JWT_SHAPED.fullmatch(token) for token in written_tokens)

    lines = whole_log(batch_env, job_id)
    [start] = [line for line in lines if "Executing workload" in line]  # the Task SDK really ran
    assert str(item.ti.id) in start  # it printed this workload
    text = "\n".join(lines)
    for token in {item.token, *written_tokens}:
        assert token not in text
    assert JWT_SHAPED.search(text) is None, JWT_SHAPED.search(text)
    if model_prints_token:  # Airflow 3.1: the line had the token, the bootstrap replaced it
        assert "token='***'" in start
    else:
        assert "token=" not in start

    api_server_executor = make_executor(start=False)
    ti = SimpleNamespace(dag_id="dag", external_executor_id=job_id)
    _, shown = api_server_executor.get_task_log(ti, 1)  # what the UI shows
    assert shown and JWT_SHAPED.search("\n".join(shown)) is None
    assert not any(token in line for token in written_tokens for line in shown)


def test_whole_log_reads_every_page_of_a_long_log(batch_env):
    """The check above reads the whole stream, not just its first page."""
    batch = batch_env.client("batch")
    job_id = batch.submit_job(
        jobName=f"log-lines-{uuid.uuid4().hex[:8]}",
        jobQueue=batch_env.job_queue,
        jobDefinition=batch_env.job_definition,
        containerOverrides={"command": ["python", "-c", "for i in range(30000): print(i)"]},
    )["jobId"]
    deadline = time.monotonic() + 60
    while batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"] not in ("SUCCEEDED", "FAILED"):
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.1)
    assert whole_log(batch_env, job_id) == [str(i) for i in range(30000)]


class StatsRecorder:
    """Every metric name and tag the executor sends through Airflow's Stats."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def incr(self, name, count=1, rate=1, *, tags=None):
        self.sent.append(f"{name} {tags}")

    def timing(self, name, value, *, tags=None):
        self.sent.append(f"{name} {tags}")

    def gauge(self, name, value, rate=1, delta=False, *, tags=None):
        self.sent.append(f"{name} {tags}")


def test_no_token_reaches_the_executors_logs_metrics_or_cli(
    make_executor, batch_env, s3_mode, monkeypatch, caplog, capsys
):
    """Every token the run wrote (as the local Batch saw it arrive) against everything the executor
    logged, every metric name and tag it sent, and what its CLI printed about the run's jobs."""
    import argparse
    import logging

    from airflow_batch_executor import metrics
    from airflow_batch_executor.cli import commands

    stats = StatsRecorder()
    monkeypatch.setattr(metrics, "Stats", stats)
    caplog.set_level(logging.DEBUG, logger="airflow_batch_executor")
    before = set(batch_env.workload_tokens())
    batch_env.faults.fail_before_start(pattern="dag-scanned1-*")  # a resubmission: a second token
    executor = make_executor()
    items = [workload(f"scanned{n}", run_id="scan") for n in range(3)]
    queue(executor, *items)
    events = pump(executor, finished(*(item.ti.key for item in items)), timeout=60)
    assert set(final_states(events).values()) == {"success"}
    executor.end()
    commands.jobs(
        argparse.Namespace(job_queue=None, state=None, dag_id="dag", limit=50, team=None, verbose=None)
    )
    printed = capsys.readouterr()
    tokens = set(batch_env.workload_tokens()) - before
    if MINTS:
        assert len(tokens) >= 4, "three first writes and one resubmission, each with a token of its own"
    else:
        assert tokens == {"workload-token"}, "this Airflow cannot sign tokens: the scheduler's is kept"
    assert stats.sent and "job(s) in" in printed.out and "submitted for" in caplog.text
    for where, text in (
        ("the executor's log", caplog.text),
        ("its metrics", "\n".join(stats.sent)),
        ("its CLI", printed.out + printed.err),
    ):
        assert not [token for token in tokens if token in text], f"a token of this run in {where}"
        assert JWT_SHAPED.search(text) is None, f"a JWT in {where}"
