"""Starts the local Batch in its own process and learns its endpoint from the ready file.

It runs in another process (not in the test process) because its jobs inherit its
environment: they must see the stack's AIRFLOW_HOME and DAGs folder, and nothing of the caller's.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from batch_devtools.devstack.errors import StackError
from batch_devtools.devstack.processes import ManagedProcess
from batch_devtools.local_batch.environment import ReadyEnvironment

STEP_DELAY_SECONDS = 0.05


def start_local_batch(
    stack_dir: Path, env: Mapping[str, str], *, publish_events: bool = False
) -> tuple[ManagedProcess, Path]:
    """Start the server on a free port; returns the process and the ready file to wait for.

    ``publish_events``: the server sends job state-change events to its status queue.
    """
    ready_file = stack_dir / "local-batch.ready.json"
    argv = [
        sys.executable,
        "-m",
        "batch_devtools.local_batch",
        "--port",
        "0",
        "--ready-file",
        str(ready_file),
        "--step-delay",
        str(STEP_DELAY_SECONDS),
        *(["--publish-events"] if publish_events else []),
    ]
    process = ManagedProcess("local-batch", argv, env, stack_dir / "local-batch.log", cwd=stack_dir)
    return process, ready_file


def wait_until_ready(process: ManagedProcess, ready_file: Path, timeout: float) -> ReadyEnvironment:
    deadline = time.monotonic() + timeout
    while not ready_file.exists():
        if not process.is_alive():
            raise StackError(f"the local Batch exited with code {process.poll()}:\n{process.tail()}")
        if time.monotonic() > deadline:
            raise StackError(f"the local Batch was not ready within {timeout:.0f}s:\n{process.tail()}")
        time.sleep(0.05)
    return ReadyEnvironment(**json.loads(ready_file.read_text()))
