"""A warm interpreter that starts jobs by forking itself.

``python -m batch_devtools.local_batch.zygote FD MODULE...``

Every job of an end-to-end stack runs ``python -m airflow.sdk.execution_time.execute_workload ...``,
and a new interpreter spends about 3 CPU-seconds importing Airflow before the task starts. On a
2-core CI machine that is most of what a short task costs, and under load it delayed a task's start
by up to 30 s. This process imports the modules named on its command line once; each job is then a
fork of it that becomes ``python -m MODULE ARGS...``: its own session (process group), its own
stdout and stderr (pipes passed in with the request), the job's whole environment, and the module
run as ``__main__``, with atexit handlers and exit codes as a fresh interpreter has them.

Airflow reads its configuration when it is imported, so one zygote serves only jobs whose
Airflow-related environment equals its own (see :mod:`batch_devtools.local_batch.warm_start`, its
client, which also starts it).

Protocol, over the ``SOCK_SEQPACKET`` socket ``FD`` (one JSON message per packet):

* zygote → client, once the modules are imported: ``{"ready": true}``;
* client → zygote: ``{"id": N, "argv": [...], "env": {...}}`` with two file descriptors (the job's
  stdout and stderr); zygote → client: ``{"id": N, "pid": PID}``;
* zygote → client, when a job's process ends: ``{"pid": PID, "returncode": CODE}`` (negative for a
  signal, as :attr:`subprocess.Popen.returncode`).

The zygote ends when the client closes the socket; jobs still running go on in their sessions.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import runpy
import select
import signal
import socket
import sys
from typing import Any

MAX_MESSAGE = 1 << 20
"""Largest request: a command-mode workload's JSON and the job's environment fit many times over."""


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.send(json.dumps(message).encode())


def serve(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """Fork a job per request and report each one's end; returns, in a forked job only, its request."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    send(sock, {"ready": True})
    while True:
        readable, _, _ = select.select([sock, wake_read], [], [])
        if wake_read in readable:
            while True:
                try:
                    if not os.read(wake_read, 512):
                        break
                except BlockingIOError:
                    break
            report_ended(sock)
        if sock in readable:
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 2)
            if not data:
                return None
            request = json.loads(data)
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                for fd in (wake_read, wake_write):
                    os.close(fd)
                sock.close()
                return request, fds
            for fd in fds:
                os.close(fd)
            send(sock, {"id": request["id"], "pid": pid})


def report_ended(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        with contextlib.suppress(OSError):  # the client is gone: the next read ends this zygote
            send(sock, {"pid": pid, "returncode": os.waitstatus_to_exitcode(status)})


def become(request: dict[str, Any], fds: list[int]) -> None:
    """Turn this forked process into ``python -m MODULE ARGS...`` with the job's env and output."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    stdout, stderr = fds
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    for fd in (null, stdout, stderr):
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    _, _, module, *arguments = request["argv"]
    # ``python -m`` runs the module afresh as ``__main__``; the imported copy stays importable.
    sys.modules.pop(module, None)
    sys.argv = [module, *arguments]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def main(argv: list[str]) -> None:
    fd, *modules = argv
    sock = socket.socket(fileno=int(fd))
    for module in modules:
        importlib.import_module(module)
    gc.collect()
    gc.freeze()  # forked jobs share the imported modules' pages instead of copying them on collection
    forked = serve(sock)
    if forked is not None:
        become(*forked)


if __name__ == "__main__":
    main(sys.argv[1:])
