"""One component of the stack as a subprocess in its own process group, logging to a file.

Each component runs in its own session so that stopping it also stops what it forked (uvicorn
workers, DAG parsing processes, task supervisors), and so that a test can SIGKILL one scheduler
without touching anything else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

TAIL_LINES = 40


class ManagedProcess:
    """A started component: its process group, its log file, and how to stop it."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path
    ) -> None:
        self.name = name
        self.log_path = log_path
        with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self._process = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self._process.pid

    def poll(self) -> int | None:
        return self._process.poll()

    def is_alive(self) -> bool:
        return self._process.poll() is None

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if the process still runs after ``timeout`` seconds."""
        try:
            return self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the whole process group."""
        try:
            os.killpg(self._process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, grace_seconds: float) -> int:
        """SIGTERM the group, SIGKILL it after ``grace_seconds``; always reaps the leader."""
        if self.is_alive():
            self.signal(signal.SIGTERM)
            self.wait(grace_seconds)
        self.signal(signal.SIGKILL)
        return self._process.wait()

    def tail(self, lines: int = TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as error:
            return f"(cannot read {self.log_path}: {error})"
        return "\n".join(text.splitlines()[-lines:])


def stop_all(processes: Sequence[ManagedProcess], grace_seconds: float) -> None:
    """Stop several components at once, so shutdown takes one grace period, not one per component."""
    for process in processes:
        if process.is_alive():
            process.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for process in processes:
        process.wait(max(0.0, deadline - time.monotonic()))
    for process in processes:
        process.stop(0)


def kill_process_groups(pids: Sequence[int]) -> None:
    """SIGKILL process groups led by ``pids`` (local Batch jobs run as their own session leaders)."""
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
