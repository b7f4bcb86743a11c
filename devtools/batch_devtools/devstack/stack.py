"""``DevStack``: a local Batch plus a real Airflow 3 (API server, DAG processor, schedulers) that
runs every task as a Batch job, in a fresh temporary AIRFLOW_HOME.

Start-up overlaps what can overlap (the local Batch boots while the database migrates; the three
Airflow components start together), because on a 2-core machine each Airflow process spends
seconds importing before it does anything.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import boto3

from batch_devtools.devstack.api_client import ApiClient
from batch_devtools.devstack.batch_process import start_local_batch, wait_until_ready
from batch_devtools.devstack.database import MetadataDatabase, create_database
from batch_devtools.devstack.errors import StackError
from batch_devtools.devstack.metadata import MetadataReader, TaskEvent, TaskInstanceRow, TaskKey
from batch_devtools.devstack.network import free_port
from batch_devtools.devstack.processes import ManagedProcess, kill_process_groups, stop_all
from batch_devtools.devstack.settings import (
    Timing,
    airflow_environment,
    multi_team_environment,
    team_executor_environment,
)
from batch_devtools.local_batch import LocalBatchControl
from batch_devtools.local_batch.environment import (
    FAKE_ACCESS_KEY,
    FAKE_SECRET_KEY,
    ReadyEnvironment,
    TeamResources,
    create_team_resources,
)

log = logging.getLogger(__name__)

FINISHED_STATES = frozenset({"success", "failed"})
"""Where a DAG run, or a connection test, has ended."""
COMMAND_TIMEOUT = 180.0
"""For one-off set-up commands (``airflow db migrate``, ``airflow teams create``) started together."""
COMPONENT_TIMEOUT = 90.0
STOP_GRACE_SECONDS = 10.0
SCHEDULER_STOP_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.25
T = TypeVar("T")


class DevStack:
    """Use as a context manager: everything it started is stopped on exit, also when a test fails.

    ``status_events``: the local Batch publishes job state-change events to its status queue, and the
    schedulers read job status from it (``status_queue_url``).

    ``teams``: Airflow's multi-team mode, team name → the folder of that team's DAG bundle
    (``dags_folder`` is then the global bundle). Each team gets its own executor, configured only
    through the team's own variables, with its own job queue and job definition in the local Batch.
    The global executor alone reads the status queue: one SQS queue read by several executors
    hands each of them the others' events.

    ``dag_files``: only the files of ``dags_folder`` these glob patterns match are the stack's DAGs
    (linked into a folder of the stack). The DAG processor parses every file of its folder at start-up,
    about half a CPU-second each, so a test stack that needs two DAGs of fifteen starts cheaper.
    """

    def __init__(
        self,
        dags_folder: Path | str,
        *,
        database: str = "sqlite",
        schedulers: int = 1,
        timing: Timing | None = None,
        stack_dir: Path | str | None = None,
        keep_dir: bool = False,
        status_events: bool = False,
        teams: Mapping[str, Path | str] | None = None,
        dag_files: Iterable[str] | None = None,
    ) -> None:
        self.dags_folder = _existing_folder(dags_folder)
        self.dag_files = _matching_files(self.dags_folder, dag_files) if dag_files is not None else None
        self.teams = {team: _existing_folder(folder) for team, folder in (teams or {}).items()}
        self.database_kind = database
        self.scheduler_count = schedulers
        self.status_events = status_events
        self.timing = timing or Timing()
        self._owns_dir = stack_dir is None
        self.stack_dir = Path(stack_dir or tempfile.mkdtemp(prefix="abe-devstack-")).resolve()
        self.keep_dir = keep_dir
        self.startup_seconds: float | None = None
        self._database: MetadataDatabase | None = None
        self._environment: ReadyEnvironment | None = None
        self._team_resources: dict[str, TeamResources] = {}
        self._env: dict[str, str] = {}
        self._processes: list[ManagedProcess] = []
        self._schedulers: list[ManagedProcess] = []
        self._killed: list[ManagedProcess] = []
        self._metadata: MetadataReader | None = None
        self._api: ApiClient | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(failed=exc_type is not None)

    def start(self) -> DevStack:
        began = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop(failed=True)
            raise
        self.startup_seconds = time.monotonic() - began
        log.info("Dev stack ready in %.1fs (%s)", self.startup_seconds, self.stack_dir)
        return self

    def _start(self) -> None:
        self.stack_dir.mkdir(parents=True, exist_ok=True)
        home = self.stack_dir / "airflow-home"
        home.mkdir(exist_ok=True)
        self._database = create_database(self.database_kind, self.stack_dir)
        api_port = free_port()
        secret = secrets.token_urlsafe(32)
        dags = self._airflow_dags_folder()
        base_env = airflow_environment(
            home=home,
            dags_folder=dags,
            database_url=self._database.url,
            api_port=api_port,
            jwt_secret=secret,
            timing=self.timing,
        )
        if self.teams:
            base_env.update(multi_team_environment(dags, self.teams))
        batch, ready_file = start_local_batch(self.stack_dir, base_env, publish_events=self.status_events)
        self._processes.append(batch)
        if not self._database.migrated:
            self._finish([self._spawn("db-migrate", ["db", "migrate"], base_env)], "migrate the database")
            self._database.keep_migrated()
        # Teams exist before any component starts: the scheduler refuses executors of unknown teams, the
        # DAG processor bundles of unknown teams. Airflow's own command creates them, as an operator would.
        team_creation = [
            self._spawn(f"teams-create-{team}", ["teams", "create", team], base_env) for team in self.teams
        ]
        self._environment = wait_until_ready(batch, ready_file, COMPONENT_TIMEOUT)
        self._env = {**base_env, **self._environment.settings()}
        if self.status_events:
            self._env["AIRFLOW__AWS_BATCH_EXECUTOR__STATUS_QUEUE_URL"] = self._environment.status_queue_url
        for team in self.teams:
            resources = create_team_resources(self._client, self._environment, team)
            self._team_resources[team] = resources
            self._env.update(team_executor_environment(resources, self.timing))
        self._finish(team_creation, "create the teams")
        self._metadata = MetadataReader(self._database.engine())
        self._api = ApiClient(f"http://127.0.0.1:{api_port}")
        self._spawn("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(api_port)], self._env)
        self._spawn("dag-processor", ["dag-processor"], self._env)
        for _ in range(self.scheduler_count):
            self._spawn_scheduler()
        self._wait("the API server to answer", self._api.healthy)
        self._wait("the DAG processor to start", lambda: self.metadata.running_jobs("DagProcessorJob"))
        self._wait(
            f"{self.scheduler_count} scheduler(s) to start",
            lambda: len(self.metadata.running_jobs("SchedulerJob")) >= self.scheduler_count,
        )

    def _airflow_dags_folder(self) -> Path:
        """``dags_folder``, or with ``dag_files`` a folder of the stack linking to those files alone."""
        if self.dag_files is None:
            return self.dags_folder
        folder = self.stack_dir / "dags"
        folder.mkdir(parents=True, exist_ok=True)
        for file in self.dag_files:
            link = folder / file.name
            link.unlink(missing_ok=True)  # a stack_dir given again
            link.symlink_to(file)
        return folder

    def _finish(self, commands: list[ManagedProcess], what: str) -> None:
        """Wait for one-off ``airflow`` commands started together; each must succeed."""
        deadline = time.monotonic() + COMMAND_TIMEOUT
        for command in commands:
            code = command.wait(max(0.0, deadline - time.monotonic()))
            if code != 0:
                raise StackError(
                    f"{command.name} (to {what}) {'timed out' if code is None else f'exited with {code}'}:\n"
                    f"{command.tail()}"
                )
            self._processes.remove(command)

    def stop(self, failed: bool = False) -> None:
        """Stop every component; job processes of the local Batch die with it or are killed here."""
        job_pids = self._live_job_pids()
        # Schedulers first, while the local Batch still answers: on SIGTERM Airflow calls the
        # executor's end(), which stops submitting and leaves running jobs alone (killed below).
        stop_all([p for p in self._processes if p in self._schedulers], SCHEDULER_STOP_GRACE_SECONDS)
        stop_all(self._processes, STOP_GRACE_SECONDS)
        kill_process_groups(job_pids)
        self._processes.clear()
        self._schedulers.clear()
        self._killed.clear()
        if self._database is not None:
            try:
                self._database.drop()
            except Exception as error:  # noqa: BLE001 - collect every failure to report it
                log.warning("Could not drop the stack's database %s: %s", self._database.url, error)
            self._database = None
        if failed or self.keep_dir or not self._owns_dir:
            log.warning("Dev stack files kept in %s", self.stack_dir)
        else:
            shutil.rmtree(self.stack_dir, ignore_errors=True)

    def _live_job_pids(self) -> list[int]:
        if self._environment is None:
            return []
        try:
            return [job["pid"] for job in self.batch.jobs() if job.get("pid")]
        except (OSError, ValueError):
            return []

    # -- components -------------------------------------------------------------------------------

    def _spawn(self, name: str, airflow_args: list[str], env: dict[str, str]) -> ManagedProcess:
        argv = [sys.executable, "-m", "airflow", *airflow_args]
        process = ManagedProcess(name, argv, env, self.stack_dir / f"{name}.log", cwd=self.stack_dir)
        self._processes.append(process)
        return process

    def _spawn_scheduler(self) -> ManagedProcess:
        process = self._spawn(
            f"scheduler-{len(self._schedulers) + 1}", ["scheduler", "--skip-serve-logs"], self._env
        )
        self._schedulers.append(process)
        return process

    def start_scheduler(self, timeout: float = COMPONENT_TIMEOUT) -> ManagedProcess:
        """Start one more scheduler (a second one, or a killed one's replacement); waits until it runs."""
        known = set(self.metadata.running_jobs("SchedulerJob"))
        process = self._spawn_scheduler()
        self._wait(
            f"{process.name} to start",
            lambda: set(self.metadata.running_jobs("SchedulerJob")) - known,
            timeout,
        )
        return process

    def kill_scheduler(
        self, signum: int = signal.SIGKILL, index: int = 0, timeout: float = STOP_GRACE_SECONDS
    ) -> int:
        """Signal the ``index``-th live scheduler's whole process group and wait until it is gone.

        Returns the scheduler's exit code. Nothing escalates to SIGKILL here: a scheduler that does
        not exit within ``timeout`` seconds of ``signum`` is an error (and is killed when the stack stops).
        """
        live = [process for process in self._schedulers if process.is_alive()]
        if index >= len(live):
            raise StackError(f"there is no live scheduler number {index}; {len(live)} scheduler(s) run")
        process = live[index]
        self._killed.append(process)
        process.signal(signum)
        code = process.wait(timeout)
        if code is None:
            raise StackError(
                f"{process.name} did not exit within {timeout:.0f}s of signal {signum}:\n{process.tail()}"
            )
        return code

    def airflow_cli(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = COMPONENT_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run ``airflow <args>`` with the stack's environment; returns it finished, output captured.

        ``env`` changes that environment for this command alone, e.g. to start one more scheduler with
        a team's setting broken and see it refuse to start.
        """
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env={**self.env, **(env or {})},
            cwd=self.stack_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _wait(self, what: str, condition: Callable[[], T], timeout: float = COMPONENT_TIMEOUT) -> T:
        """Poll ``condition`` until truthy, failing fast (with logs) when a component dies."""
        deadline = time.monotonic() + timeout
        while True:
            dead = [p for p in self._processes if not p.is_alive() and p not in self._killed]
            if dead:
                process = dead[0]
                raise StackError(
                    f"{process.name} exited with code {process.poll()} while waiting for {what}:\n"
                    + process.tail()
                )
            try:
                result = condition()
            except Exception as error:  # noqa: BLE001 - collect every failure to report it
                log.debug("Waiting for %s: %s", what, error)
                result = None
            if result:
                return result
            if time.monotonic() > deadline:
                raise StackError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.log_tails()}")
            time.sleep(POLL_SECONDS)

    # -- access -----------------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """The environment the Airflow components run with (for running ``airflow`` CLI commands)."""
        return dict(self._env)

    @property
    def environment(self) -> ReadyEnvironment:
        if self._environment is None:
            raise StackError("the stack is not running; call start() or use it as a context manager")
        return self._environment

    def team_resources(self, team: str) -> TeamResources:
        """``team``'s own job queue and job definition in the local Batch (multi-team stacks)."""
        if team not in self._team_resources:
            raise StackError(f"the stack has no team {team!r}; its teams: {sorted(self._team_resources)}")
        return self._team_resources[team]

    @property
    def metadata(self) -> MetadataReader:
        if self._metadata is None:
            raise StackError("the stack is not running; call start() or use it as a context manager")
        return self._metadata

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            raise StackError("the stack is not running; call start() or use it as a context manager")
        return self._api

    @property
    def batch(self) -> LocalBatchControl:
        """Faults, recorded SubmitJob requests and jobs of the local Batch."""
        return LocalBatchControl(self.environment.endpoint_url)

    def batch_client(self) -> Any:
        """A boto3 Batch client on the local Batch, e.g. for DescribeJobs."""
        return self._client("batch")

    def _client(self, service: str) -> Any:
        env = self.environment
        return boto3.client(
            service,
            endpoint_url=env.endpoint_url,
            region_name=env.region,
            aws_access_key_id=FAKE_ACCESS_KEY,
            aws_secret_access_key=FAKE_SECRET_KEY,
        )

    def submitted_requests(self) -> list[dict[str, Any]]:
        return self.batch.submitted_requests()

    def describe_jobs(self, job_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(dict.fromkeys(job_ids))
        client = self.batch_client()
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 100):
            for job in client.describe_jobs(jobs=ids[start : start + 100])["jobs"]:
                found[job["jobId"]] = job
        return found

    def wait_for_jobs(self, job_ids: Iterable[str], timeout: float = 60.0) -> dict[str, dict[str, Any]]:
        """DescribeJobs records once every job has ended: a task's process outlives its reported state."""
        ids = list(job_ids)

        def ended() -> dict[str, dict[str, Any]] | None:
            jobs = self.describe_jobs(ids)
            return jobs if all(job["status"] in ("SUCCEEDED", "FAILED") for job in jobs.values()) else None

        return self._wait(f"Batch jobs {ids} to end", ended, timeout)

    # -- DAG runs ---------------------------------------------------------------------------------

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = COMPONENT_TIMEOUT) -> None:
        wanted = set(dag_ids)

        def parsed() -> bool:
            return wanted <= self.metadata.parsed_dag_ids()

        try:
            self._wait(f"DAGs {sorted(wanted)} to be parsed", parsed, timeout)
        except StackError as error:
            errors = "\n".join(self.metadata.import_errors()) or "(no import errors recorded)"
            raise StackError(f"{error}\nImport errors:\n{errors}") from error

    def trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, timeout: float = COMPONENT_TIMEOUT
    ) -> str:
        """Trigger a run of ``dag_id`` once it has been parsed; returns the run id."""
        self.wait_for_dags([dag_id], timeout)
        return self.api.trigger(dag_id, conf)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 120.0) -> str:
        """Wait until the run is success or failed; returns that state."""
        try:
            return self._wait(
                f"run {run_id} of {dag_id} to finish",
                lambda: (state := self.metadata.run_state(dag_id, run_id)) in FINISHED_STATES and state,
                timeout,
            )
        except StackError as error:
            raise StackError(f"{error}\nTask states: {self.task_states(dag_id, run_id)}") from error

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstanceRow]:
        return self.metadata.task_instances(dag_id, run_id)

    def task_events(self, dag_id: str, run_id: str, task_id: str | None = None) -> list[TaskEvent]:
        """The run's rows of Airflow's event log (table ``log``), where the executor writes its reasons."""
        return self.metadata.task_events(dag_id, run_id, task_id)

    def task_states(self, dag_id: str, run_id: str) -> dict[TaskKey, str | None]:
        return {row.key: row.state for row in self.task_instances(dag_id, run_id)}

    def test_connection(self, connection: dict[str, Any], timeout: float = COMPONENT_TIMEOUT) -> Any:
        """Run a connection test through the API server (Airflow 3.3) and wait for its outcome."""
        token = self.api.enqueue_connection_test(connection)
        return self._wait(
            f"the test of connection {connection.get('connection_id')} to finish",
            lambda: (answer := self.api.connection_test(token))["state"] in FINISHED_STATES and answer,
            timeout,
        )

    # -- diagnostics ------------------------------------------------------------------------------

    def live_schedulers(self) -> int:
        return sum(1 for process in self._schedulers if process.is_alive())

    def component_log(self, name: str) -> str:
        """The whole log of one component, e.g. ``scheduler-2``."""
        return (self.stack_dir / f"{name}.log").read_text(errors="replace")

    def log_paths(self) -> list[Path]:
        return sorted(self.stack_dir.glob("*.log"))

    def log_tails(self, lines: int = 40) -> str:
        """The end of every component's log, for a failure message."""
        parts = []
        for path in self.log_paths():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"----- {path.name} (last {len(text)} lines) -----\n" + "\n".join(text))
        return "\n".join(parts)


def _matching_files(folder: Path, patterns: Iterable[str]) -> list[Path]:
    """The files of ``folder`` (not below it) each pattern matches; a pattern matching none is a typo."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        matched = sorted(path for path in folder.glob(pattern) if path.is_file() and path.parent == folder)
        if not matched:
            raise StackError(f"no file of {folder} matches {pattern!r}; name DAG files of that folder")
        found.update(dict.fromkeys(matched))
    return list(found)


def _existing_folder(folder: Path | str) -> Path:
    path = Path(folder).resolve()
    if not path.is_dir():
        raise StackError(f"DAGs folder {path} does not exist; pass the folder with your DAG files")
    return path
