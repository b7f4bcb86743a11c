"""Client for the control endpoints, for tests that run the local Batch in another process.

It speaks the same fault vocabulary as :class:`~batch_devtools.local_batch.faults.Faults`
(``add_fault("fail_before_start", pattern="x*", count=2)``) and uses only the standard library,
so end-to-end test harnesses need neither moto nor boto3 to drive it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

CONTROL_PATH = "/_local_batch"


class LocalBatchControl:
    """Drives a local Batch server over HTTP."""

    def __init__(self, endpoint_url: str, timeout: float = 10.0) -> None:
        self._base = endpoint_url.rstrip("/") + CONTROL_PATH
        self._timeout = timeout

    def add_fault(self, fault: str, **kwargs: Any) -> dict[str, Any]:
        """Add one fault (a :class:`Faults` method name plus its arguments); returns all faults."""
        return self._call("POST", "/faults", {"fault": fault, **kwargs})

    def faults(self) -> dict[str, Any]:
        return self._call("GET", "/faults")

    def clear_faults(self) -> dict[str, Any]:
        return self._call("DELETE", "/faults")

    def block_queue(self, job_queue: str, reason: str) -> dict[str, Any]:
        """Block a job queue (name or ARN): its RUNNABLE jobs stay there, with ``reason``; returns all
        faults (``Faults.block_queue``)."""
        return self.add_fault("block_queue", job_queue=job_queue, reason=reason)

    def unblock_queue(self, job_queue: str) -> dict[str, Any]:
        """Let the jobs of a blocked queue go on; returns all faults."""
        return self.add_fault("unblock_queue", job_queue=job_queue)

    def submitted_requests(self) -> list[dict[str, Any]]:
        return self._call("GET", "/submitted")["requests"]

    def clear_submitted_requests(self) -> None:
        self._call("DELETE", "/submitted")

    def environment(self) -> dict[str, Any]:
        return self._call("GET", "/environment")

    def jobs(self) -> list[dict[str, Any]]:
        return self._call("GET", "/jobs")["jobs"]

    def create_jobs(self, requests: list[dict[str, Any]]) -> list[str]:
        """Create jobs from SubmitJob bodies in one call (load tests; not counted as API calls)."""
        return self._call("POST", "/jobs", {"requests": requests})["jobIds"]

    def exit_jobs(self, job_ids: list[str], exit_code: int = 0) -> dict[str, int | None]:
        """End these held RUNNING jobs now, as if their container exited; job id → stoppedAt (ms)."""
        return self._call("POST", "/jobs/exit", {"jobIds": job_ids, "exitCode": exit_code})["stoppedAt"]

    def vanish_jobs(self, job_ids: list[str]) -> dict[str, bool]:
        """Make these finished jobs disappear from DescribeJobs and ListJobs now; job id → done."""
        return self._call("POST", "/jobs/vanish", {"jobIds": job_ids})["vanished"]

    def history(self) -> list[dict[str, Any]]:
        """What the local Batch recorded, in order: ``[{"event", "at", ...}, ...]``."""
        return self._call("GET", "/history")["history"]

    def clear_history(self) -> None:
        self._call("DELETE", "/history")

    def workload_tokens(self) -> list[str]:
        """Every token seen in an S3 PutObject body."""
        return self._call("GET", "/workload-tokens")["tokens"]

    def clear_workload_tokens(self) -> None:
        self._call("DELETE", "/workload-tokens")

    def calls(self) -> dict[str, int]:
        """API calls received so far, per lower-cased operation name (``submitjob``)."""
        return self._call("GET", "/calls")["calls"]

    def clear_calls(self) -> None:
        self._call("DELETE", "/calls")

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(
            self._base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            message = json.loads(err.read() or b"{}").get("message", err.reason)
            raise ValueError(f"local Batch rejected {method} {path}: {message}") from err
