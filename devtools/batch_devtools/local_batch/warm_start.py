"""Starts a job whose command runs a Task SDK module as a fork of a warm interpreter (a zygote).

A job's command ``python -m airflow.sdk.execution_time.execute_workload ...`` (or the executor's
callback runner) costs about 3 CPU-seconds of imports in a new interpreter, most of what a short task
costs. :class:`WarmStarts` keeps, per Airflow-related environment (Airflow reads its configuration
when it is imported), one :mod:`~batch_devtools.local_batch.zygote` that has imported those modules,
and starts each such job as a fork of it: a local process like any other (own process group, own
pipes, the job's environment), with the imports already done. Any other command, a job whose
zygote is not ready yet (it imports beside the job), or more environments than ``MAX_ZYGOTES``,
start a new interpreter as before.

The S3 bootstrap is not started warm: it is cheap, and the Task SDK it starts is its own child.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import IO, Any

from airflow_batch_executor.job_contract import CALLBACK_RUNNER_MODULE, TASK_SDK_MODULE
from batch_devtools.local_batch.zygote import MAX_MESSAGE

logger = logging.getLogger(__name__)

WARM_MODULES = (TASK_SDK_MODULE, CALLBACK_RUNNER_MODULE)
MAX_ZYGOTES = 4
"""Zygotes per local Batch; each holds Airflow's imports (about 150 MB, shared with its jobs)."""
COLD_STARTS = 2
"""Jobs of an environment that start new interpreters before its zygote starts: a zygote costs one
import of Airflow, which pays off only over several jobs (an executor test's environment has one or
two; an end-to-end stack's, dozens)."""
KEY_PREFIXES = ("AIRFLOW", "_AIRFLOW", "PYTHON")
KEY_NAMES = frozenset({"HOME", "PATH", "VIRTUAL_ENV"})
CLOSE_TIMEOUT = 10.0


def environment_key(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """What a zygote's imports may have read from its environment; jobs sharing it share a zygote."""
    return tuple(
        sorted(
            (name, value) for name, value in env.items() if name.startswith(KEY_PREFIXES) or name in KEY_NAMES
        )
    )


def runs_module(argv: Sequence[str], modules: Sequence[str]) -> bool:
    """Whether a resolved command is ``python -m MODULE ...`` for one of ``modules``."""
    return len(argv) >= 3 and argv[0] == sys.executable and argv[1] == "-m" and argv[2] in modules


class WarmProcess:
    """A forked job, with the parts of :class:`subprocess.Popen` that a job's runner uses."""

    def __init__(self, argv: Sequence[str], pid: int, stdout: IO[bytes], stderr: IO[bytes]) -> None:
        self.args = list(argv)
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None
        self._ended = threading.Event()

    def ended(self, returncode: int) -> None:
        self.returncode = returncode
        self._ended.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        assert self.returncode is not None
        return self.returncode


class _Pending:
    """A fork asked of the zygote: what its answer needs to become a :class:`WarmProcess`."""

    def __init__(self, argv: Sequence[str], stdout: int, stderr: int) -> None:
        self.argv = argv
        self.stdout = stdout
        self.stderr = stderr
        self.answered = threading.Event()
        self.process: WarmProcess | None = None


class Zygote:
    """One zygote process and the socket to it; a reader thread takes its answers."""

    def __init__(self, env: Mapping[str, str], modules: Sequence[str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._socket = ours
        self._process = subprocess.Popen(
            [sys.executable, "-m", "batch_devtools.local_batch.zygote", str(theirs.fileno()), *modules],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            pass_fds=[theirs.fileno()],
        )
        theirs.close()
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._pending: dict[int, _Pending] = {}
        self._running: dict[int, WarmProcess] = {}
        self._ready = threading.Event()
        self.closed = False
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"zygote-{self._process.pid}")
        self._reader.start()

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and not self.closed

    def start(self, argv: Sequence[str], env: Mapping[str, str]) -> WarmProcess | None:
        """Fork a job; None when the zygote is gone (the caller starts a new interpreter instead)."""
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        pending = _Pending(argv, out_read, err_read)
        try:
            with self._lock:
                if self.closed:
                    raise OSError("the zygote has ended")
                request_id = next(self._ids)
                self._pending[request_id] = pending
                message = json.dumps({"id": request_id, "argv": list(argv), "env": dict(env)}).encode()
                try:
                    socket.send_fds(self._socket, [message], [out_write, err_write])
                except OSError:
                    del self._pending[request_id]
                    raise
        except OSError as err:
            logger.warning(
                "Zygote %s cannot start a job (%s); starting a new interpreter", self._process.pid, err
            )
            pending.answered.set()
        finally:
            os.close(out_write)
            os.close(err_write)
        pending.answered.wait()
        if pending.process is None:
            os.close(out_read)
            os.close(err_read)
        return pending.process

    def close(self) -> None:
        """End the zygote, and with it the jobs still running in its forks (nobody could reap them)."""
        with self._lock:
            self.closed = True
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        try:
            self._process.wait(timeout=CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:  # still importing: it never read the socket
            self._process.kill()
            self._process.wait()
        self._reader.join()
        self._socket.close()

    def _read(self) -> None:
        while True:
            try:
                data = self._socket.recv(MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                self._ended()
                return
            self._take(json.loads(data))

    def _take(self, message: dict[str, Any]) -> None:
        if message.get("ready"):
            self._ready.set()
            return
        with self._lock:
            if "id" in message:
                pending = self._pending.pop(message["id"])
                process = WarmProcess(
                    pending.argv,
                    message["pid"],
                    os.fdopen(pending.stdout, "rb"),
                    os.fdopen(pending.stderr, "rb"),
                )
                self._running[process.pid] = process
                pending.process = process
                pending.answered.set()
                return
            ended = self._running.pop(message["pid"], None)
        if ended is not None:
            ended.ended(message["returncode"])

    def _ended(self) -> None:
        """The zygote is gone: forks not yet answered start elsewhere, and running jobs are ended
        as a lost host ends them, since nobody can reap them now."""
        with self._lock:
            if not self.closed:
                logger.warning("Zygote %s ended; its jobs start new interpreters", self._process.pid)
            self.closed = True
            orphans = list(self._running.values())
            self._running.clear()
            unanswered = list(self._pending.values())
            self._pending.clear()
        for pending in unanswered:
            pending.answered.set()
        for process in orphans:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.ended(-signal.SIGKILL)


class WarmStarts:
    """The zygotes of one local Batch, by environment key.

    The first ``COLD_STARTS`` jobs of an environment start new interpreters, the last of them
    starting its zygote, which imports beside it; a job's start never waits for a zygote (it runs
    under the job's lock, which DescribeJobs and TerminateJob take too).
    """

    def __init__(self, modules: Sequence[str] = WARM_MODULES) -> None:
        self.modules = tuple(modules)
        self._lock = threading.Lock()
        self._zygotes: dict[tuple[tuple[str, str], ...], Zygote] = {}
        self._cold: dict[tuple[tuple[str, str], ...], int] = {}
        self._closed = False

    def start(self, argv: Sequence[str], env: Mapping[str, str]) -> WarmProcess | None:
        """The job's process forked from a ready zygote, or None when it must start a new interpreter."""
        if not runs_module(argv, self.modules):
            return None
        key = environment_key(env)
        with self._lock:
            if self._closed:
                return None
            zygote = self._zygotes.get(key)
            if zygote is None:
                self._cold[key] = self._cold.get(key, 0) + 1
                if self._cold[key] >= COLD_STARTS and len(self._zygotes) < MAX_ZYGOTES:
                    self._zygotes[key] = Zygote(env, self.modules)
                return None
        return zygote.start(argv, env) if zygote.ready else None

    @property
    def ready(self) -> int:
        """How many zygotes can fork jobs now."""
        with self._lock:
            return sum(zygote.ready for zygote in self._zygotes.values())

    def close(self) -> None:
        """End every zygote and the jobs still running in its forks."""
        with self._lock:
            self._closed = True
            zygotes = list(self._zygotes.values())
            self._zygotes.clear()
        for zygote in zygotes:
            zygote.close()
