"""``python -m batch_devtools.local_batch`` as a separate process, the way e2e tests use it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import boto3
from waiting import wait_until

from batch_devtools.local_batch import LocalBatchControl
from batch_devtools.local_batch.__main__ import main


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs. A zombie does not: it has ended and only waits to be reaped
    (by init, for a job process orphaned by the local Batch's exit), yet still answers signal 0."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # the state follows the command name, which is in parentheses and may hold spaces
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: signal 0 is the best that can be asked
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


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

    def is_ready() -> bool:
        assert server.poll() is None, "the local Batch exited before it was ready"
        return ready_file.exists()

    try:
        # A whole interpreter imports moto and builds the environment: on a loaded machine that alone
        # may take a minute, and waiting longer costs nothing when it is quick.
        wait_until(is_ready, "the local Batch is ready", timeout=120)
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
        pid: int = wait_until(
            lambda: next(j["pid"] for j in control.jobs() if j["jobId"] == job_id), "the job has a process"
        )

        server.send_signal(signal.SIGTERM)

        assert server.wait(timeout=60) == 0
        # The local Batch kills the job's process group before it exits; an orphan still being reaped
        # by init may linger a moment, so its end is waited on, not looked for once.
        wait_until(lambda: not alive(pid), "the job's process ended with the local Batch")
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
