"""``python -m batch_devtools.local_batch`` as a separate process, the way e2e tests use it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3

from batch_devtools.local_batch import LocalBatchControl
from batch_devtools.local_batch.__main__ import main


def test_serves_prints_settings_and_shuts_down_cleanly(tmp_path: Path) -> None:
    ready_file = tmp_path / "ready.json"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batch_devtools.local_batch",
            "--port",
            "0",
            "--ready-file",
            str(ready_file),
            "--step-delay",
            "0.02",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready_file.exists():
            assert server.poll() is None, "the local Batch exited before it was ready"
            assert time.monotonic() < deadline, "the local Batch was not ready within 30s"
            time.sleep(0.05)
        ready = json.loads(ready_file.read_text())
        endpoint = ready["endpoint_url"]
        printed = [server.stdout.readline().strip() for _ in range(7)]  # type: ignore[union-attr]

        assert printed == [
            "export AIRFLOW__AWS_BATCH_EXECUTOR__REGION_NAME=us-east-1",
            "export AIRFLOW__AWS_BATCH_EXECUTOR__JOB_QUEUE=airflow-local-queue",
            "export AIRFLOW__AWS_BATCH_EXECUTOR__JOB_DEFINITION=airflow-local-job",
            f"export AWS_ENDPOINT_URL={endpoint}",
            "export AWS_ACCESS_KEY_ID=testing",
            "export AWS_SECRET_ACCESS_KEY=testing",
            "export AWS_DEFAULT_REGION=us-east-1",
        ]

        batch = boto3.client(
            "batch",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        job_id = batch.submit_job(
            jobName="cli-sleeper",
            jobQueue=ready["job_queue"],
            jobDefinition=ready["job_definition"],
            containerOverrides={"command": ["python", "-c", "import time; time.sleep(60)"]},
        )["jobId"]
        control = LocalBatchControl(endpoint)
        deadline = time.monotonic() + 10
        while not (pid := next(j["pid"] for j in control.jobs() if j["jobId"] == job_id)):
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)

        server.send_signal(signal.SIGTERM)

        assert server.wait(timeout=15) == 0
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        assert not alive, "the job's process outlived the local Batch"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_a_busy_port_is_reported_instead_of_hanging() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        assert main(["--port", str(port)]) == 1
