"""LocalBatch: moto's server on 127.0.0.1, with jobs that really run as local processes (or inline).

The HTTP seam: ``ThreadedMotoServer`` builds its werkzeug server in its own thread and keeps it
in ``_server``; werkzeug reads ``server.app`` on every request, so wrapping that attribute
after ``start()`` puts :class:`LocalBatchMiddleware` in front of every call (pinned with the
other seams to ``moto>=5.1,<5.3``).
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any, Self

import boto3
from botocore.config import Config
from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer

from batch_devtools.local_batch import queues, seams
from batch_devtools.local_batch.environment import (
    FAKE_ACCESS_KEY,
    FAKE_SECRET_KEY,
    STATUS_QUEUE,
    ReadyEnvironment,
    TeamResources,
    create_environment,
    create_team_resources,
)
from batch_devtools.local_batch.events import EventPublisher
from batch_devtools.local_batch.faults import Faults
from batch_devtools.local_batch.job import FINAL_STATUSES, LocalJob
from batch_devtools.local_batch.middleware import LocalBatchMiddleware
from batch_devtools.local_batch.runtime import PROCESS, JobSettings, Runtime, activate, deactivate
from batch_devtools.local_batch.warm_start import WarmStarts

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEFAULT_REGION = "us-east-1"
SHUTDOWN_REASON = "Local Batch shut down"
INLINE_S3_CONNECTIONS = 64
"""Connections of the S3 client all inline jobs share: enough that concurrent fetches do not queue."""
CONTROL_TIMEOUT = 30.0
"""How long a call to moto's own API (the reset) may take: about 0.4 s on an idle machine, it re-creates
every backend the process used (EC2's loads its AMIs), so it slows with the machine's load. A call
that does not answer in time fails with every thread's stack, which shows where it stood."""
SLOW_CONTROL = 2.0


class LocalBatch:
    """A local AWS Batch for tests and development; use as a context manager or start()/stop().

    ``start()`` resets moto's process-wide state and creates the ready environment, so only one
    instance may run per process at a time.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        region: str = DEFAULT_REGION,
        step_delay: float = 0.1,
        time_scale: float = 1.0,
        log_flush_interval: float = 0.2,
        kill_grace_seconds: float = 2.0,
        job_mode: str = PROCESS,
        hold_seconds: float | None = None,
        inline_run_seconds: float = 0.05,
        publish_events: bool = False,
        warm_start: bool = True,
    ) -> None:
        self._requested_port = port
        self.region = region
        self.runtime = Runtime(
            settings=JobSettings(
                step_delay=step_delay,
                time_scale=time_scale,
                log_flush_interval=log_flush_interval,
                kill_grace_seconds=kill_grace_seconds,
                job_mode=job_mode,
                hold_seconds=hold_seconds,
                inline_run_seconds=inline_run_seconds,
                publish_events=publish_events,
                warm_start=warm_start,
            )
        )
        self._server: ThreadedMotoServer | None = None
        self._environment: ReadyEnvironment | None = None
        self._session: boto3.session.Session | None = None
        self._session_lock = threading.Lock()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> LocalBatch:
        activate(self.runtime)
        try:
            seams.install()
            _ensure_port_free(self._requested_port)
            server = ThreadedMotoServer(ip_address=HOST, port=self._requested_port, verbose=False)
            server.start()
            self._server = server
            werkzeug_server = getattr(server, "_server", None)
            if werkzeug_server is None:
                raise RuntimeError(
                    "moto's ThreadedMotoServer no longer keeps its werkzeug server in _server; "
                    "the local Batch supports moto>=5.1,<5.3"
                )
            werkzeug_server.app = LocalBatchMiddleware(werkzeug_server.app, self.runtime)
            self._post("/moto-api/reset")
            self._environment = create_environment(self.client, self.endpoint_url, self.region)
            self.runtime.environment = self._environment.to_dict()
            queues.connect(self.runtime)
            self.runtime.s3 = self.client("s3", config=Config(max_pool_connections=INLINE_S3_CONNECTIONS))
            self.runtime.events = EventPublisher(self.runtime, DEFAULT_ACCOUNT_ID, self.region, STATUS_QUEUE)
            self.runtime.events.start()
        except BaseException:
            self.stop()
            raise
        logger.info(
            "Local Batch ready at %s (queue %s, job definition %s)",
            self.endpoint_url,
            self.job_queue,
            self.job_definition,
        )
        return self

    def stop(self) -> None:
        """Kill every job's process group, stop the server and give moto its behaviour back."""
        for job in self.runtime.jobs.all():
            if not job.finished:
                job.terminate(SHUTDOWN_REASON)
        for job in self.runtime.jobs.all():
            if job.is_alive():
                job.join(timeout=self.runtime.settings.kill_grace_seconds + 3.0)
        self.runtime.warm_starts.close()
        self.runtime.warm_starts = WarmStarts()  # a restarted server starts its zygotes afresh
        if self.runtime.events is not None:
            self.runtime.events.stop()
            self.runtime.events = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        seams.uninstall()
        deactivate(self.runtime)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("LocalBatch is not running; call start() or use it as a context manager")
        return self._server.get_host_and_port()[1]

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def environment(self) -> ReadyEnvironment:
        if self._environment is None:
            raise RuntimeError("LocalBatch is not running; call start() or use it as a context manager")
        return self._environment

    @property
    def job_queue(self) -> str:
        return self.environment.job_queue

    @property
    def second_job_queue(self) -> str:
        return self.environment.second_job_queue

    @property
    def job_definition(self) -> str:
        return self.environment.job_definition

    @property
    def log_group(self) -> str:
        return self.environment.log_group

    @property
    def status_queue_url(self) -> str:
        """The SQS queue job state-change events go to (while ``settings.publish_events`` is on)."""
        return self.environment.status_queue_url

    @property
    def faults(self) -> Faults:
        return self.runtime.faults

    @property
    def settings(self) -> JobSettings:
        """Timing knobs (step_delay, time_scale, ...), changeable while jobs run."""
        return self.runtime.settings

    def client(self, service: str, config: Config | None = None) -> Any:
        """A new boto3 client for ``service`` on this server, with the fake credentials.

        Clients come from one session, which parses each service's model once (a tenth of a second
        of CPU per client otherwise); a session is not thread-safe, so clients are made one at a time.
        """
        with self._session_lock:
            if self._session is None:
                self._session = boto3.session.Session(
                    aws_access_key_id=FAKE_ACCESS_KEY,
                    aws_secret_access_key=FAKE_SECRET_KEY,
                    region_name=self.region,
                )
            return self._session.client(service, endpoint_url=self.endpoint_url, config=config)

    def add_team(self, team: str) -> TeamResources:
        """Create ``team``'s own job queue and job definition (multi-team Airflow)."""
        return create_team_resources(self.client, self.environment, team)

    def settings_env(self) -> dict[str, str]:
        """Environment variables pointing Airflow's executor and boto3 at this local Batch."""
        return self.environment.settings()

    def submitted_requests(self) -> list[dict[str, Any]]:
        """The raw bodies of every SubmitJob request the server received (throttled ones excluded)."""
        return self.runtime.submissions.all()

    def clear_submitted_requests(self) -> None:
        self.runtime.submissions.clear()

    def api_calls(self) -> dict[str, int]:
        """API calls received so far, per lower-cased operation name (``submitjob``)."""
        return self.runtime.calls.all()

    def clear_api_calls(self) -> None:
        self.runtime.calls.clear()

    def history(self, since: int = 0) -> list[dict[str, Any]]:
        """What happened, in order, each entry ``{"event", "at", ...}`` (see the README's history table);
        from entry ``since`` on, so a reader that keeps count copies only the new entries."""
        return self.runtime.history.all(since)

    def clear_history(self) -> None:
        self.runtime.history.clear()

    def workload_tokens(self) -> list[str]:
        """Every token seen in an S3 PutObject body (a JSON object's top-level ``token``), in order."""
        return self.runtime.history.tokens()

    def clear_workload_tokens(self) -> None:
        self.runtime.history.clear_tokens()

    def vanish_job(self, job_id: str) -> None:
        """Make a finished job disappear from DescribeJobs and ListJobs now, as AWS forgets old jobs."""
        job = self.runtime.jobs.get(job_id)
        if job is None:
            raise ValueError(f"no job {job_id!r} in this local Batch")
        if not job.vanish_now():
            raise ValueError(f"job {job_id} is {job.status}; only a finished job can vanish")

    def job_pid(self, job_id: str) -> int | None:
        """The pid of a job's running process; None before it runs and after it ends."""
        job = self.runtime.jobs.get(job_id)
        return job.pid if job is not None else None

    def release_stuck_jobs(self, job_ids: Iterable[str] | None = None) -> list[str]:
        """Let the jobs held in RUNNABLE by ``stuck_in_runnable`` start (process and inline mode), as if
        capacity appeared: all of them, or those of ``job_ids`` only; the ids of those released."""
        wanted = None if job_ids is None else set(job_ids)
        released = [
            job
            for job in self.runtime.jobs.all()
            if not job.held and job.stuck and (wanted is None or job.job_id in wanted)
        ]
        for job in released:
            job.release()
        return [job.job_id for job in released]

    def stuck_jobs(self) -> list[str]:
        """The ids of the jobs ``stuck_in_runnable`` holds in RUNNABLE right now (until released or
        terminated)."""
        return [job.job_id for job in self.runtime.jobs.all() if not job.held and job.stuck]

    def unfinished_jobs(self) -> list[str]:
        return [job.job_id for job in self.runtime.jobs.all() if job.status not in FINAL_STATUSES]

    def _post(self, path: str) -> None:
        request = urllib.request.Request(f"{self.endpoint_url}{path}", data=b"", method="POST")
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=CONTROL_TIMEOUT) as response:
                json.loads(response.read() or b"{}")
        except (TimeoutError, urllib.error.URLError) as error:
            raise RuntimeError(
                f"the local Batch did not answer POST {path} within {CONTROL_TIMEOUT:g} s ({error}); "
                f"its jobs still alive: {_alive_jobs()}; where every thread stood:\n{_thread_stacks()}"
            ) from error
        took = time.monotonic() - started
        if took > SLOW_CONTROL:
            logger.warning("POST %s took %.1f s; jobs still alive: %s", path, took, _alive_jobs())


def _alive_jobs() -> list[str]:
    """Jobs whose thread still runs, of this local Batch or an earlier one (moto's reset joins them)."""
    return [thread.job_id for thread in threading.enumerate() if isinstance(thread, LocalJob)]


def _thread_stacks() -> str:
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    return "\n".join(
        f"--- {names.get(ident, ident)}\n{''.join(traceback.format_stack(frame))}"
        for ident, frame in sys._current_frames().items()
    )


def _ensure_port_free(port: int) -> None:
    """Fail fast: moto's server thread dies silently on a busy port and start() then hangs."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as err:
            raise OSError(err.errno, f"port {port} on {HOST} is in use; pick another port or 0") from err
