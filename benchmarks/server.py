"""The local Batch in its own process, in hold mode, so its server threads never share our GIL."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Self

from batch_devtools.local_batch import LocalBatchControl


class BatchServer:
    """``python -m batch_devtools.local_batch --job-mode hold`` on a free port.

    ``publish_events`` adds ``--publish-events``: every status change becomes a message on the
    environment's ``status_queue_url``, as EventBridge would deliver it.
    """

    def __init__(
        self, *, step_delay: float = 0.05, log_path: Path | None = None, publish_events: bool = False
    ) -> None:
        self._step_delay = step_delay
        self._publish_events = publish_events
        self._log_path = log_path
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-local-batch-")
        self.environment: dict[str, Any] = {}

    def __enter__(self) -> Self:
        ready = Path(self._tmp.name) / "ready.json"
        self._log = open(self._log_path, "w") if self._log_path else None
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batch_devtools.local_batch",
                "--port",
                "0",
                "--ready-file",
                str(ready),
                "--job-mode",
                "hold",
                "--step-delay",
                str(self._step_delay),
                "--log-level",
                "WARNING",
                *(["--publish-events"] if self._publish_events else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log or subprocess.DEVNULL,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not ready.exists():
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"the local Batch exited with {self._process.returncode} before it was ready"
                )
            if time.monotonic() > deadline:
                raise RuntimeError("the local Batch was not ready within 60s")
            time.sleep(0.05)
        self.environment = json.loads(ready.read_text())
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._log is not None:
            self._log.close()
        self._tmp.cleanup()

    @property
    def endpoint_url(self) -> str:
        return self.environment["endpoint_url"]

    @property
    def control(self) -> LocalBatchControl:
        return LocalBatchControl(self.endpoint_url, timeout=120)
