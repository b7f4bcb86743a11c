"""Runs one container command as a local process group, streaming its output line by line.

A Batch container is a process tree that dies as a whole, so the command runs in its own
session (process group) and every signal goes to the group: a task runner that forks
supervisors or workers cannot outlive its "container".
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO

from batch_devtools.local_batch.warm_start import WarmProcess, WarmStarts

logger = logging.getLogger(__name__)

LineSink = Callable[[str], None]
PUMP_JOIN_SECONDS = 30.0
"""How long :meth:`ProcessRunner.finish` waits, at most, for the output of a process that has ended."""
PYTHON_NAMES = frozenset({"python", "python3", f"python{sys.version_info.major}.{sys.version_info.minor}"})


def resolve_argv(command: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Map the container's argv[0] onto this machine.

    ``python`` means "the interpreter of this virtualenv" (that is what the task image would
    ship); other bare names are looked up on the job's PATH, then next to the interpreter so
    console scripts of the virtualenv (``airflow``) are found even when the venv is not on PATH.
    """
    argv = list(command)
    program = argv[0]
    if program in PYTHON_NAMES:
        argv[0] = sys.executable
    elif os.sep not in program:
        found = shutil.which(program, path=env.get("PATH")) or shutil.which(
            program, path=os.path.dirname(sys.executable)
        )
        if found:
            argv[0] = found
    return argv


def exit_code_of(returncode: int) -> int:
    """Report a signal death the way a container runtime does (128 + signal number)."""
    return 128 - returncode if returncode < 0 else returncode


class ProcessRunner:
    """One started command: its process group, its output pumps, and how to stop it."""

    def __init__(
        self, command: Sequence[str], env: Mapping[str, str], sink: LineSink, warm: WarmStarts | None = None
    ) -> None:
        argv = resolve_argv(command, env)
        self._process: subprocess.Popen[bytes] | WarmProcess = (
            warm and warm.start(argv, env)
        ) or subprocess.Popen(
            argv,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.warm = isinstance(self._process, WarmProcess)
        self._pumps = [
            threading.Thread(
                target=self._pump,
                args=(stream, sink),
                daemon=True,
                name=f"local-batch-pump-{self._process.pid}",
            )
            for stream in (self._process.stdout, self._process.stderr)
        ]
        for pump in self._pumps:
            pump.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def poll(self) -> int | None:
        return self._process.poll()

    def stop(self, grace_seconds: float) -> int:
        """SIGTERM the group, SIGKILL it after ``grace_seconds``; returns the container exit code."""
        self._signal_group(signal.SIGTERM)
        try:
            self._process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            logger.info("Process %s ignored SIGTERM for %ss; killing it", self.pid, grace_seconds)
        return self.kill()

    def kill(self) -> int:
        """SIGKILL the whole group at once, like a host that disappears; returns the exit code."""
        self._signal_group(signal.SIGKILL)
        return self.finish()

    def finish(self) -> int:
        """Reap the process and drain its output; stragglers of the group die with it."""
        returncode = self._process.wait()
        self._signal_group(signal.SIGKILL)
        # With the whole group killed the pipes reach EOF, so the pumps end once they have read every
        # line left: waiting for them costs nothing when they are quick, and on a loaded machine they
        # may need seconds to be scheduled (a short cap loses the last lines of the job's log). The cap
        # only bounds a process that left the group (its own session) and keeps the pipes open.
        deadline = time.monotonic() + PUMP_JOIN_SECONDS
        for pump in self._pumps:
            pump.join(timeout=max(0.0, deadline - time.monotonic()))
            if pump.is_alive():
                logger.warning(
                    "Output of process %s still open %ss after it ended (held by a process that left "
                    "its group?); lines from now on are not shipped",
                    self.pid,
                    PUMP_JOIN_SECONDS,
                )
        return exit_code_of(returncode)

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self._process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    @staticmethod
    def _pump(stream: IO[bytes] | None, sink: LineSink) -> None:
        if stream is None:
            return
        with stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if line:
                    sink(line)
