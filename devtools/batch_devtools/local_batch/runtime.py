"""State shared by the pieces of one running local Batch: settings, faults, jobs, submissions, history.

moto builds job objects itself (inside ``BatchBackend.submit_job``) with a fixed argument list,
so the local job class cannot be handed its configuration; it looks up the process-wide active
runtime instead. Only one local Batch can therefore run per process — moto's backends are
process-global anyway, so two would share (and corrupt) the same jobs.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batch_devtools.local_batch.ecs import EcsTasks
from batch_devtools.local_batch.faults import Faults
from batch_devtools.local_batch.warm_start import WarmStarts

if TYPE_CHECKING:
    from batch_devtools.local_batch.events import EventPublisher
    from batch_devtools.local_batch.job import LocalJob

PROCESS = "process"
HOLD = "hold"
INLINE = "inline"
JOB_MODES = (PROCESS, HOLD, INLINE)


@dataclass
class JobSettings:
    """Timing knobs; read on every use, so tests may change them while the server runs."""

    step_delay: float = 0.1
    """Seconds spent in each of SUBMITTED, PENDING, RUNNABLE and STARTING."""
    time_scale: float = 1.0
    """Multiplier for ``attemptDurationSeconds``, so a 60 s Batch timeout can fire in a second."""
    log_flush_interval: float = 0.2
    """Seconds between two shipments of a running job's output to CloudWatch Logs."""
    kill_grace_seconds: float = 2.0
    """Seconds between SIGTERM and SIGKILL when a job is terminated or times out."""
    job_mode: str = PROCESS
    """``process``: each job runs its command as a local process (one thread per job). ``hold``:
    jobs run nothing and need no thread; they stay RUNNING until terminated (see ``hold.py``).
    ``inline``: like ``process``, but the executor's workload commands run inside the job's thread
    (the real bootstrap's fetch, then a recorded stand-in for the Task SDK; see ``inline.py``), so
    thousands of jobs need no process. Read when a job is submitted."""
    hold_seconds: float | None = None
    """Hold mode: seconds a job stays RUNNING before it SUCCEEDS; None holds it until terminated."""
    inline_run_seconds: float = 0.05
    """Inline mode: seconds a workload "runs" (interruptible) before its container exits."""
    warm_start: bool = True
    """Process mode: start a job whose command runs the Task SDK (or the executor's callback runner)
    as a fork of an interpreter that has imported it already (see ``warm_start.py``), instead of a
    new interpreter that spends about 3 CPU-seconds importing Airflow. Read when a job starts."""
    publish_events: bool = False
    """Publish a "Batch Job State Change" event to the status queue on every status change
    (see ``events.py``); off by default, so a queue nobody reads does not fill up."""

    def __post_init__(self) -> None:
        if self.job_mode not in JOB_MODES:
            raise ValueError(f"job_mode must be one of {', '.join(JOB_MODES)}, got {self.job_mode!r}")


class SubmissionLog:
    """Every SubmitJob request body the server received, so tests can check what was really sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []

    def record(self, params: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(params)

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()


class CallCounter:
    """How many API calls the server received, per operation (``submitjob``, ``describejobs``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def count(self, operation: str) -> None:
        with self._lock:
            self._counts[operation] = self._counts.get(operation, 0) + 1

    def all(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


class History:
    """What happened, in order, as the local Batch saw it: submissions, attempts, outcomes,
    terminations, workload objects written, read and removed, and inline workload runs.

    A fault soak checks its invariants on this record (a workload runs at most once, a finished
    try leaves no live job), so it is kept by the server itself, not by the code under test.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._tokens: dict[str, None] = {}

    def record(self, event: str, **fields: Any) -> None:
        with self._lock:
            self._entries.append({"event": event, "at": time.time(), **fields})

    def all(self, since: int = 0) -> list[dict[str, Any]]:
        """Copies of the entries from index ``since`` on: a soak reading the history as it grows
        copies only what is new."""
        with self._lock:
            return copy.deepcopy(self._entries[since:])

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def add_token(self, token: str) -> None:
        """Remember a token seen in a workload object, for scans of where tokens leaked to."""
        with self._lock:
            self._tokens[token] = None

    def tokens(self) -> list[str]:
        with self._lock:
            return list(self._tokens)

    def clear_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()


class JobRegistry:
    """The local jobs of this runtime, so shutdown can kill their processes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, LocalJob] = {}

    def register(self, job: LocalJob) -> None:
        with self._lock:
            self._jobs[job.job_id] = job

    def get(self, job_id: str) -> LocalJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[LocalJob]:
        with self._lock:
            return list(self._jobs.values())


@dataclass
class Runtime:
    settings: JobSettings = field(default_factory=JobSettings)
    faults: Faults = field(default_factory=Faults)
    submissions: SubmissionLog = field(default_factory=SubmissionLog)
    calls: CallCounter = field(default_factory=CallCounter)
    jobs: JobRegistry = field(default_factory=JobRegistry)
    history: History = field(default_factory=History)
    environment: dict[str, Any] = field(default_factory=dict)
    """The ready environment (names, ARNs, endpoint) once it has been created."""
    events: EventPublisher | None = None
    """Publishes job state-change events once the status queue exists."""
    warm_starts: WarmStarts = field(default_factory=WarmStarts)
    """The zygotes jobs are forked from when ``settings.warm_start`` is on; closed when the server stops."""
    s3: Any = None
    """The one (thread-safe) boto3 S3 client on this server that inline jobs fetch workloads with."""
    ecs_tasks: EcsTasks = field(default_factory=EcsTasks)
    """The ECS tasks of the attempts under way, which the task metadata endpoint answers for."""


_active: Runtime | None = None
_active_lock = threading.Lock()


def activate(runtime: Runtime) -> None:
    global _active
    with _active_lock:
        if _active is not None:
            raise RuntimeError(
                "A local Batch is already running in this process; stop it first, or share one "
                "instance (e.g. a session-scoped pytest fixture) — moto's state is process-global."
            )
        _active = runtime


def deactivate(runtime: Runtime) -> None:
    global _active
    with _active_lock:
        if _active is runtime:
            _active = None


def active_runtime() -> Runtime:
    with _active_lock:
        if _active is None:
            raise RuntimeError("No local Batch is running in this process; start a LocalBatch first.")
        return _active
