"""``AwsBatchExecutor``: the scheduler-facing shell.

Each method turns a scheduler call into work for a collaborator and hands over: the request factory
builds requests, the job supervisor submits, tracks and polls on its own threads (the job's next step
is decided in :mod:`~airflow_batch_executor.rules.lifecycle`), and what the scheduler must hear comes back
as task events, reported here on the scheduler's thread.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf as airflow_conf
from airflow.executors.base_executor import BaseExecutor
from airflow.models.taskinstancekey import TaskInstanceKey

from airflow_batch_executor.airflow_side import adapter, compat
from airflow_batch_executor.airflow_side.compat import KeepsEventLogRows
from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.definitions.registry import DefinitionRegistry
from airflow_batch_executor.errors import OptionError, TaskConfigError
from airflow_batch_executor.health import require_healthy, run_health_checks
from airflow_batch_executor.metrics import Metrics
from airflow_batch_executor.options import ExecutorOptions, connection_options, load_options, task_log_lines
from airflow_batch_executor.records import Orphan, TaskEvent, TaskState, WorkloadKey
from airflow_batch_executor.requests.factory import RequestFactory
from airflow_batch_executor.requests.placement import PlacementCatalog
from airflow_batch_executor.requests.task_specs import (
    ExecutionTimeouts,
    task_instance_spec,
    workload_key,
    workload_spec,
)
from airflow_batch_executor.supervisor import CONNECTION_TEST_REAPED_REASON, JobSupervisor
from airflow_batch_executor.task_logs import read_task_log

if TYPE_CHECKING:
    from airflow.models.taskinstance import TaskInstance

PROCESS_BUDGET_SECONDS = 0.1
END_POLL_SECONDS = 0.5


class AwsBatchExecutor(KeepsEventLogRows, BaseExecutor):
    """Runs every Airflow task instance (and executor callback and connection test) as an AWS Batch job.

    In multi-team mode each team's instance reads its own options through ``self.conf`` and shares
    nothing mutable with the others: its own AWS clients, threads, rate limits, caches and metrics.
    """

    supports_callbacks: bool = True
    supports_multi_team: bool = True
    supports_connection_test: bool = compat.supports_connection_tests()
    serve_logs: bool = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics = Metrics(self.team_name)
        self.timeouts = ExecutionTimeouts()
        self.options: ExecutorOptions | None = None
        self.gateway: BatchGateway | None = None
        self.factory: RequestFactory | None = None
        self.jobs: JobSupervisor | None = None
        self._accepting = False
        self._stopped = False
        self._log_gateways: dict[str | None, BatchGateway] = {}
        self._held: list[TaskEvent] = []
        """Outcomes waiting for the scheduler to read their task's RUNNING event (see ``_report``)."""

    def start(self) -> None:
        """Read and check the options, run the health check, and start the worker threads."""
        options = self.options = load_options(self.conf)
        self.gateway = BatchGateway(options.conn_id, options.region_name, team=options.team_name)
        try:
            self.factory = RequestFactory(
                options,
                api_url=compat.execution_api_url(self.conf),
                default_queue=airflow_conf.get("operators", "default_queue", fallback="default"),
                catalog=PlacementCatalog(self.gateway),
                registry=DefinitionRegistry(self.gateway, metrics=self.metrics),
            )
        except OptionError as error:
            raise error.for_team(self.team_name) from None
        if options.check_health_on_startup:
            self.check_health()
        self.jobs = JobSupervisor(
            self.gateway,
            self.factory,
            options,
            token_generator=compat.token_generator(self),
            metrics=self.metrics,
        )
        self.jobs.start()
        self._accepting = True
        adapter.freeze_startup_heap()
        self.log.info(
            "AwsBatchExecutor%s started: job queue %s, job definition %s, up to %s submits/s",
            f" of team {self.team_name}" if self.team_name else "",
            options.job_queue,
            options.job_definition,
            options.submit_rate_limit,
        )

    def check_health(self) -> None:
        """Stop start-up with every failed check and its fix."""
        assert self.options is not None and self.gateway is not None and self.factory is not None
        options = self.options
        checks = run_health_checks(
            self.gateway,
            options.job_queue,
            options.job_definition,
            self.factory.base,
            options.workload_transport,
            options.workload_kms_key_id,
            team=self.team_name,
            fallback_queues=self.factory.ladder.fallbacks(),
        )
        for check in checks:
            self.log.info("AwsBatchExecutor health check %s", check)
        if not all(check.ok for check in checks):
            self.metrics.incr("health_check.failed")
        require_healthy(checks, team=self.team_name)

    def _process_workloads(self, workload_items: Sequence[Any]) -> None:
        """Build each request (pure, fast) and hand it to the submit threads, within a time budget.

        Workloads not reached before the budget runs out stay queued for the next heartbeat.
        """
        deadline = time.monotonic() + PROCESS_BUDGET_SECONDS
        for workload in workload_items:
            if time.monotonic() > deadline or not self._accepting:
                return
            key = workload_key(workload)
            for pending in compat.pending_workloads(self):
                pending.pop(key, None)
            try:
                self._submit(key, workload)
            except Exception as error:
                self.log.exception("Could not prepare the Batch job of %s", key)
                reason = f"AWS Batch job not submitted: unexpected error {error!r}"
                self._report([TaskEvent(key, TaskState.FAILED, reason, "batch job not submitted")])

    def _submit(self, key: WorkloadKey, workload: Any) -> None:
        assert self.factory is not None and self.jobs is not None
        spec = workload_spec(workload, self.timeouts)
        try:
            request = self.factory.build(spec)
        except TaskConfigError as error:
            self.metrics.incr("submit.rejected")
            self.log.error("%s: AWS Batch job not submitted: %s", key, error)
            self._report(
                [
                    TaskEvent(
                        key,
                        TaskState.FAILED,
                        f"AWS Batch job not submitted: {error}",
                        "batch job not submitted",
                    )
                ]
            )
            return
        self.running.add(key)
        if (superseded := self.jobs.submit(key, request, spec)) is not None:
            self.running.discard(superseded)

    def sync(self) -> None:
        """Report finished submissions and job outcomes to the scheduler; never blocks on AWS."""
        if self.jobs is None:
            return
        started = time.monotonic()
        self._report(self.jobs.sync())
        self.metrics.timing("sync.duration", (time.monotonic() - started) * 1000)

    def _report(self, events: list[TaskEvent], *, hold: bool = True) -> None:
        """Hand each event to the scheduler; a reason goes where the operator will look for it.

        A task's reason goes to its event log. A callback's travels with its failure (the scheduler
        stores it as the callback's output). A connection test that failed without reporting its
        own outcome gets the reason as its result, so the UI says why instead of waiting for the
        reaper.

        An outcome whose task's RUNNING event the scheduler has not read yet waits for the next call
        (``hold``): Airflow's buffer keeps one event per task, so the outcome would replace the RUNNING
        event and with it the job id the scheduler stores as the try's external executor id, which
        adoption and the UI read. A job that ends within a heartbeat of its submission would lose it.
        """
        waiting, self._held = self._held, []
        for event in [*waiting, *events]:
            if hold and event.state in (TaskState.SUCCESS, TaskState.FAILED) and self._running_unread(event):
                self._held.append(event)
                continue
            if event.log_event and isinstance(event.key, TaskInstanceKey):
                self.log_task_event(event=event.log_event, extra=event.info, ti_key=event.key)
            if event.state is TaskState.FAILED and compat.is_connection_test(event.key):
                self._fail_connection_test(event)
            key = compat.scheduler_event_key(event.key)
            if event.state in (TaskState.SUCCESS, TaskState.FAILED):
                self.running.discard(event.key)
            if event.state is TaskState.RUNNING:
                self.running_state(key, event.info)
            elif event.state is TaskState.SUCCESS:
                self.success(key, event.info)
            elif event.state is TaskState.FAILED:
                self.fail(key, event.info)

    def _running_unread(self, event: TaskEvent) -> bool:
        buffered = self.event_buffer.get(compat.scheduler_event_key(event.key))
        return buffered is not None and buffered[0] == TaskState.RUNNING

    @staticmethod
    def get_cli_commands() -> list[Any]:
        """``airflow aws-batch-executor check | options | jobs | render | prune-definitions``."""
        from airflow_batch_executor.cli.definition import get_cli_commands

        return get_cli_commands()

    def get_task_log(self, ti: TaskInstance, try_number: int) -> tuple[list[str], list[str]]:
        """The newest lines of a running task's job log; works in the api-server's unstarted executor.

        The api-server loads executors without a team, so a team's task is read with its team's
        connection and region, looked up from its DAG.
        """
        if not ti.external_executor_id:
            return [], []
        try:
            team = self.team_name or adapter.team_of_dag(ti.dag_id)
            conf = self.conf if team == self.team_name else adapter.executor_conf(team)
            gateway = self._log_gateways.get(team)
            if gateway is None:
                conn_id, region_name = connection_options(conf)
                gateway = self._log_gateways[team] = BatchGateway(conn_id, region_name, team=team)
            limit = task_log_lines(conf)
        except Exception as error:  # noqa: BLE001 - the UI gets a message, never an error
            return [f"AwsBatchExecutor cannot read task logs: {error}"], []
        return read_task_log(gateway, ti.external_executor_id, limit)

    def try_adopt_task_instances(self, tis: Sequence[TaskInstance]) -> Sequence[TaskInstance]:
        """Adopt every task instance that may still have a Batch job; hand back only those proven to
        have none (found neither by the job id Airflow stored nor by the job's name).

        Waits a few seconds at most: a task instance whose look-up AWS has not answered by then is
        adopted, and its job is looked up in the background (see ``JobSupervisor.adopt``).
        """
        assert self.jobs is not None
        orphans = [self._orphan(ti) for ti in tis]
        found, searching, handed_back = self.jobs.adopt(orphans)
        for ti in tis:
            if ti.key in found or ti.key in searching:
                self.running.add(ti.key)
            if ti.key in found and ti.external_executor_id != found[ti.key]:
                self.running_state(ti.key, found[ti.key])
        if found or searching:
            self.log.info(
                "Adopted %d task instance(s) with Batch jobs (%d still being looked up); handed back %d "
                "with none",
                len(found) + len(searching),
                len(searching),
                len(handed_back),
            )
        back = set(handed_back)
        return [ti for ti in tis if ti.key in back]

    def _orphan(self, ti: TaskInstance) -> Orphan:
        """What adoption needs of a task instance, read here on the scheduler's thread."""
        assert self.factory is not None
        try:
            job_queue, job_name = self.factory.locate(ti)
        except TaskConfigError:
            return Orphan(ti.key, ti.external_executor_id or None, None, None)
        fallbacks = self.factory.ladder.chain(job_queue)[1:]
        options = self.factory.options
        arrays = options.array_jobs and options.workload_transport is not None and ti.map_index >= 0
        return Orphan(
            ti.key,
            ti.external_executor_id or None,
            job_queue,
            job_name,
            fallbacks,
            array_identity=task_instance_spec(ti).identity if arrays else None,
            name_prefix=options.job_name,
        )

    def revoke_task(self, *, ti: TaskInstance) -> None:
        """Forget the task wherever it is, without events; terminate its job if one exists or appears.

        It may still be queued here, waiting for a submit thread, inside a SubmitJob call, or tracked.
        """
        self.queued_tasks.pop(ti.key, None)
        self.running.discard(ti.key)
        self._held = [event for event in self._held if event.key != ti.key]
        if self.jobs is not None:
            self.jobs.revoke(ti.key, ti.external_executor_id)

    def fail_connection_test(self, key: Any) -> None:
        """The scheduler's reaper gave up on a connection test (Airflow 3.3): stop its job too."""
        super().fail_connection_test(key)  # type: ignore[misc]
        if self.jobs is not None:
            self.jobs.revoke(key, None, CONNECTION_TEST_REAPED_REASON)

    def _fail_connection_test(self, event: TaskEvent) -> None:
        try:
            if adapter.fail_connection_test(str(event.key), event.info):
                self.log.warning("Connection test %s failed: %s", event.key, event.info)
        except Exception as error:  # noqa: BLE001 - the reaper fails the test later anyway
            self.log.warning("Could not record why connection test %s failed: %s", event.key, error)

    def end(self) -> None:
        """Called by the scheduler whenever it exits: wait for tracked jobs, unless the exit is forced.

        Waiting for every Batch job during a forced exit would hold a stopping scheduler for hours,
        so that is handled as :meth:`terminate`.
        """
        if self.jobs is None or self._stopped:
            return
        if compat.scheduler_is_exiting():
            self.log.info("The scheduler is stopping; not waiting for Batch jobs")
            self.terminate()
            return
        while self.jobs.busy:
            self.sync()
            time.sleep(END_POLL_SECONDS)
        self._report([], hold=False)  # nothing reads the buffer in between now: the outcome is what counts
        self._stop(terminate_jobs=False)

    def terminate(self) -> None:
        """Stop submitting; leave running jobs for the next scheduler unless told to terminate them."""
        if self.options is not None:
            self._stop(terminate_jobs=self.options.terminate_jobs_on_shutdown)

    def _stop(self, *, terminate_jobs: bool) -> None:
        if self.jobs is not None and not self._stopped:
            self._accepting, self._stopped = False, True
            self.jobs.stop(terminate_jobs=terminate_jobs)
