"""``AwsBatchExecutor``: the scheduler-facing shell over request building, submission, tracking and
outcome classification.

Everything the scheduler calls returns quickly: submissions and DescribeJobs calls run on worker
threads, and their results become scheduler events here, on the scheduler's thread, in ``sync()``.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow.executors import workloads
from airflow.executors.base_executor import BaseExecutor

from airflow_batch_executor import adoption, metrics
from airflow_batch_executor.api_errors import ApiErrorKind, classify_api_error, describe_api_error
from airflow_batch_executor.errors import HealthCheckError, TaskConfigError
from airflow_batch_executor.gateway import DESCRIBE_CHUNK, BatchGateway
from airflow_batch_executor.health import run_health_checks
from airflow_batch_executor.naming import job_name
from airflow_batch_executor.options import (
    ExecutorOptions,
    connection_options,
    execution_api_url,
    load_options,
    task_log_lines,
)
from airflow_batch_executor.outcome import Outcome, Verdict, classify
from airflow_batch_executor.placement import PlacementCatalog, place
from airflow_batch_executor.request import base_request, build_submit_request, job_queue_for
from airflow_batch_executor.submitter import Submission, SubmitResult, Submitter, backoff_delay
from airflow_batch_executor.task_logs import read_task_log
from airflow_batch_executor.tracker import JobTracker, TrackedJob, WorkloadKey
from airflow_batch_executor.workloads import job_spec, routing_spec, workload_key

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from airflow.models.taskinstance import TaskInstance

MISSING_JOB_CHECKS = 5
PROCESS_BUDGET_SECONDS = 0.1
DESCRIBE_THREADS = 4
END_POLL_SECONDS = 0.5
SHUTDOWN_REASON = "Terminated by the Airflow scheduler on shutdown ([aws_batch_executor] terminate_jobs_on_shutdown)"
REVOKE_REASON = "Revoked by the Airflow scheduler: the task stayed queued past [scheduler] task_queued_timeout"


class AwsBatchExecutor(BaseExecutor):
    """Runs every Airflow task instance (and executor callback) as an AWS Batch job."""

    supports_callbacks: bool = True
    serve_logs: bool = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options: ExecutorOptions | None = None
        self.gateway: BatchGateway | None = None
        self.tracker = JobTracker()
        self._base_request: dict[str, Any] = {}
        self._submitter: Submitter | None = None
        self._catalog: PlacementCatalog | None = None
        self._submitting: set[WorkloadKey] = set()
        self._describe_pool: ThreadPoolExecutor | None = None
        self._describe_futures: list[Future[list[dict[str, Any]]]] = []
        self._describe_chunks: dict[Future[list[dict[str, Any]]], list[str]] = {}
        self._next_poll = 0.0
        self._api_url = ""
        self._default_queue = "default"
        self._accepting = False
        self._stopped = False
        self._event_rows: list[Any] = []

    def start(self) -> None:
        """Read and check the options, run the health check, and start the worker threads."""
        from airflow.configuration import conf

        self.options = load_options(self.conf)
        self._base_request = base_request(self.options)
        self._api_url = execution_api_url(self.conf)
        self._default_queue = conf.get("operators", "default_queue", fallback="default")
        self.gateway = BatchGateway(self.options.conn_id, self.options.region_name)
        if self.options.check_health_on_startup:
            self.check_health()
        self._catalog = PlacementCatalog(self.gateway)
        self._submitter = Submitter(
            self.gateway,
            rate=self.options.submit_rate_limit,
            concurrency=self.options.submit_concurrency,
            prepare=self._placed_request,
        )
        self._submitter.start()
        self._describe_pool = ThreadPoolExecutor(DESCRIBE_THREADS, thread_name_prefix="batch-describe")
        self._accepting = True
        self._freeze_startup_heap()
        self.log.info(
            "AwsBatchExecutor started: job queue %s, job definition %s, up to %s submits/s",
            self.options.job_queue,
            self.options.job_definition,
            self.options.submit_rate_limit,
        )

    @staticmethod
    def _freeze_startup_heap() -> None:
        """Exclude everything allocated before the executor started from Python's full collections.

        A scheduler process holds millions of long-lived objects (Airflow, providers, DAG models).
        Every full garbage collection scans them all, about 0.2 s each, and thousands of queued
        workloads trigger such collections again and again; one landing in a heartbeat stalls the
        scheduler. Freezing the start-up heap (as Airflow's DAG processor manager does) leaves the
        collections only the objects created since.
        """
        gc.freeze()

    def check_health(self) -> None:
        """Stop start-up with every failed check and its fix."""
        assert self.options is not None and self.gateway is not None
        checks = run_health_checks(
            self.gateway, self.options.job_queue, self.options.job_definition, self._base_request
        )
        for check in checks:
            self.log.info("AwsBatchExecutor health check %s", check)
        failed = [check for check in checks if not check.ok]
        if failed:
            metrics.incr("health_check.failed")
            raise HealthCheckError(
                "AwsBatchExecutor cannot start; its health check failed:\n"
                + "\n".join(f"  {check}" for check in failed)
                + "\nSet [aws_batch_executor] check_health_on_startup = False only to bypass this check."
            )

    # -- submitting ---------------------------------------------------------------------------

    def _process_workloads(self, workload_items: Sequence[Any]) -> None:
        """Build each request (pure, fast) and hand it to the submit threads, within a time budget.

        Workloads not reached before the budget runs out stay queued for the next heartbeat.
        """
        deadline = time.monotonic() + PROCESS_BUDGET_SECONDS
        for workload in workload_items:
            if time.monotonic() > deadline or not self._accepting:
                return
            key = workload_key(workload)
            if isinstance(workload, workloads.ExecuteTask):
                self.queued_tasks.pop(key, None)
            else:
                self.queued_callbacks.pop(key, None)
            try:
                self._submit(key, workload)
            except Exception as error:
                self.log.exception("Could not prepare the Batch job of %s", key)
                self._fail(key, f"AWS Batch job not submitted: unexpected error {error!r}", event="batch job not submitted")

    def _submit(self, key: WorkloadKey, workload: Any) -> None:
        assert self.options is not None and self._submitter is not None
        self._forget_earlier_try(key)
        try:
            request = build_submit_request(
                self._base_request,
                job_spec(workload),
                job_name_prefix=self.options.job_name,
                api_url=self._api_url,
                default_queue=self._default_queue,
            )
        except TaskConfigError as error:
            self._fail(key, f"AWS Batch job not submitted: {error}", event="batch job not submitted")
            metrics.incr("submit.rejected")
            return
        self.running.add(key)
        self._submitting.add(key)
        priority = workload.ti.priority_weight if isinstance(workload, workloads.ExecuteTask) else None
        self._submitter.put(Submission(key=key, request=request, priority_weight=priority))

    def _forget_earlier_try(self, key: WorkloadKey) -> None:
        """Stop tracking the job of an earlier try once Airflow has queued a new one.

        Airflow queues try N+1 only after try N is over for it (the task reported its state), yet
        try N's job may still be winding down. Its late events would at best be ignored and at worst
        share a scheduler event batch with try N+1's, where Airflow keeps one try per task and may drop
        the newer try's job id.
        """
        earlier = self.tracker.earlier_try(key)
        if earlier is not None:
            self.tracker.pop(earlier.job_id)
            self.running.discard(earlier.key)
            self.log.info("Batch job %s of %s is superseded by try %s; no longer tracking it", earlier.job_id, earlier.key, getattr(key, "try_number", "?"))

    def _placed_request(self, submission: Submission) -> dict[str, Any]:
        """Runs on a submit thread: checks that need the queue's and definition's details."""
        assert self._catalog is not None and self.options is not None
        request = submission.request
        placement = self._catalog.placement(request["jobQueue"], request["jobDefinition"])
        return place(
            request,
            placement,
            priority_weight=submission.priority_weight,
            share_identifier=self.options.share_identifier,
        )

    def _on_submit_result(self, result: SubmitResult) -> None:
        assert self.options is not None and self._submitter is not None
        submission = result.submission
        key = submission.key
        if key not in self._submitting:
            if result.job_id:
                self.log.warning("Batch job %s was submitted for %s after it was revoked; terminating it", result.job_id, key)
                self._terminate_in_background(result.job_id, REVOKE_REASON)
            return
        if result.job_id:
            self._submitting.discard(key)
            metrics.incr("submit.ok")
            job = TrackedJob(
                job_id=result.job_id,
                key=key,
                job_name=submission.job_name,
                job_queue=submission.job_queue,
                attempt=submission.attempt,
                submitted_at=time.time(),
                request=submission.request,
                priority_weight=submission.priority_weight,
            )
            self.tracker.add(job)
            how = "found already submitted" if result.found_existing else "submitted"
            self.log.info("Batch job %s (%s) %s for %s", job.job_id, job.job_name, how, key)
            self.running_state(key, result.job_id)
            return
        kind = result.error_kind
        if kind is not None and kind.retryable and submission.attempt < self.options.max_submit_job_attempts:
            delay = backoff_delay(submission.attempt)
            metrics.incr_labelled("submit.retried", kind.value)
            if kind is ApiErrorKind.THROTTLED:
                metrics.incr("throttled")
            self.log.warning(
                "SubmitJob for %s failed (attempt %d of %d, %s): %s; retrying in %.1fs",
                key, submission.attempt, self.options.max_submit_job_attempts, kind.value, result.error, delay,
            )
            self._submitter.put(submission, delay)
            return
        self._submitting.discard(key)
        metrics.incr("submit.failed")
        if kind is ApiErrorKind.REJECTED:
            reason = f"AWS Batch job not submitted (attempt {submission.attempt}): {result.error}"
        else:
            reason = (
                f"AWS Batch SubmitJob failed after {submission.attempt} attempt(s); last error: {result.error}. "
                "Check the scheduler's network access to AWS Batch and its credentials."
            )
        self._fail(key, reason, event="batch job not submitted")

    # -- syncing ------------------------------------------------------------------------------

    def sync(self) -> None:
        """Turn finished submissions and DescribeJobs answers into scheduler events; never blocks on AWS."""
        if self._submitter is None:
            return
        started = time.monotonic()
        for result in self._submitter.results():
            self._isolated(result.submission.key, self._on_submit_result, result)
        try:
            self._harvest_descriptions()
            self._start_poll_round()
        except Exception:
            self.log.exception("AwsBatchExecutor sync failed; it will be retried on the next heartbeat")
        metrics.timing("sync.duration", (time.monotonic() - started) * 1000)
        metrics.gauge("jobs.tracked", len(self.tracker))
        metrics.gauge("jobs.submitting", len(self._submitting))

    def _start_poll_round(self) -> None:
        assert self.options is not None and self._describe_pool is not None and self.gateway is not None
        now = time.monotonic()
        if self._describe_futures or now < self._next_poll:
            return
        self._next_poll = now + self.options.status_poll_interval
        ids = self.tracker.job_ids()
        for start in range(0, len(ids), DESCRIBE_CHUNK):
            chunk = ids[start : start + DESCRIBE_CHUNK]
            future = self._describe_pool.submit(self.gateway.describe_jobs, chunk)
            self._describe_futures.append(future)
            self._describe_chunks[future] = chunk

    def _harvest_descriptions(self) -> None:
        pending = []
        for future in self._describe_futures:
            if not future.done():
                pending.append(future)
                continue
            chunk = self._describe_chunks.pop(future)
            try:
                records = future.result()
            except Exception as error:
                self.log.warning(
                    "DescribeJobs for %d Batch jobs failed (%s): %s; they will be checked again",
                    len(chunk), classify_api_error(error).value, describe_api_error(error),
                )
                continue
            self._apply_descriptions(chunk, records)
        self._describe_futures = pending

    def _apply_descriptions(self, asked: list[str], records: list[dict[str, Any]]) -> None:
        answered: dict[str, dict[str, Any]] = {}
        for record in records:
            job_id = record.get("jobId") if isinstance(record, dict) else None
            if job_id in answered:
                self.log.debug("DescribeJobs returned Batch job %s twice; using the last record", job_id)
            if job_id:
                answered[job_id] = record
        for job_id in asked:
            job = self.tracker.get(job_id)
            if job is None:
                continue
            record = answered.get(job_id)
            if record is None:
                self._isolated(job.key, self._on_missing, job)
            else:
                job.missing_checks = 0
                self._isolated(job.key, self._on_record, job, record)

    def _isolated(self, key: WorkloadKey, handler: Any, *args: Any) -> None:
        """Run one event handler so that a failure affects only its own task.

        The task is failed rather than dropped: a task the executor silently forgets would stay
        queued or running in Airflow's database forever.
        """
        try:
            handler(*args)
        except Exception as error:
            self.log.exception("Handling the Batch job of %s failed", key)
            self._submitting.discard(key)
            tracked = self.tracker.for_key(key)
            if tracked is not None:
                self.tracker.pop(tracked.job_id)
            self._fail(key, f"The AWS Batch executor could not track this task: {error!r}", event="batch job lost")

    def _on_missing(self, job: TrackedJob) -> None:
        job.missing_checks += 1
        self.log.warning(
            "Batch job %s for %s is missing from DescribeJobs (%d of %d checks)",
            job.job_id, job.key, job.missing_checks, MISSING_JOB_CHECKS,
        )
        if job.missing_checks >= MISSING_JOB_CHECKS:
            self.tracker.pop(job.job_id)
            self._fail(
                job.key,
                f"Batch job {job.job_id} ({job.job_name}) was not returned by DescribeJobs in "
                f"{MISSING_JOB_CHECKS} consecutive checks; it no longer exists in AWS Batch, so its outcome "
                "is unknown and this try is failed. Airflow's retries decide what happens next.",
                event="batch job lost",
            )

    def _on_record(self, job: TrackedJob, record: dict[str, Any]) -> None:
        outcome = classify(record)
        status = str(record.get("status"))
        reason = record.get("statusReason")
        if status != job.status or reason != job.status_reason:
            metrics.incr_labelled("jobs.status", status)
            if reason and reason != job.status_reason and outcome.verdict is Verdict.WAITING:
                self.log.info("Batch job %s for %s is %s: %s", job.job_id, job.key, status, reason)
        job.status, job.status_reason = status, reason
        if outcome.reason_class == "unknown_status":
            self.log.warning("%s", outcome.reason)
        if status == "RUNNING" or record.get("startedAt"):
            job.started = True
            job.request = None
        verdict = outcome.verdict
        if verdict is Verdict.WAITING:
            self._check_pending_limit(job)
        elif verdict is Verdict.SUCCESS:
            self.tracker.pop(job.job_id)
            self.log.info("Batch job %s for %s succeeded", job.job_id, job.key)
            self.success(job.key, job.job_id)
        elif verdict is Verdict.FAIL:
            self.tracker.pop(job.job_id)
            self._fail(job.key, outcome.reason, event="batch job failed")
        elif verdict is Verdict.TERMINATE:
            self.tracker.pop(job.job_id)
            self._terminate_in_background(job.job_id, outcome.reason[:1024])
            self._fail(job.key, outcome.reason, event="batch job cannot start")
        elif verdict is Verdict.RESUBMIT:
            self._resubmit(job, outcome)

    def _check_pending_limit(self, job: TrackedJob) -> None:
        assert self.options is not None
        limit = self.options.max_pending_seconds
        if not limit or job.started or time.time() - job.submitted_at < limit:
            return
        self.tracker.pop(job.job_id)
        reason = (
            f"Batch job {job.job_id} ({job.job_name}) did not start within {limit:g}s "
            f"([aws_batch_executor] max_pending_seconds); last status {job.status}"
            + (f": {job.status_reason}" if job.status_reason else "")
        )
        self._terminate_in_background(job.job_id, reason[:1024])
        self._fail(job.key, reason, event="batch job did not start in time")

    def _resubmit(self, job: TrackedJob, outcome: Outcome) -> None:
        assert self.options is not None and self._submitter is not None
        self.tracker.pop(job.job_id)
        if job.request is None or job.attempt >= self.options.max_submit_job_attempts:
            self._fail(
                job.key,
                f"{outcome.reason} The job was submitted {job.attempt} time(s) "
                f"([aws_batch_executor] max_submit_job_attempts = {self.options.max_submit_job_attempts}).",
                event="batch job failed",
            )
            return
        delay = backoff_delay(job.attempt)
        metrics.incr_labelled("resubmitted", outcome.reason_class)
        self.log.warning("%s Resubmitting %s in %.1fs (attempt %d).", outcome.reason, job.key, delay, job.attempt + 1)
        self.log_task_event(event="batch job resubmitted", extra=outcome.reason, ti_key=job.key)
        self._submitting.add(job.key)
        resubmission = Submission(key=job.key, request=job.request, priority_weight=job.priority_weight, attempt=job.attempt)
        self._submitter.put(resubmission, delay)

    def _fail(self, key: WorkloadKey, reason: str, *, event: str) -> None:
        self.log.error("%s: %s", key, reason)
        self.log_task_event(event=event, extra=reason, ti_key=key)
        self.fail(key, reason)

    def log_task_event(self, *, event: str, extra: str, ti_key: WorkloadKey) -> None:
        """Queue a row for the task's event log, and keep it alive until the scheduler has saved it.

        The scheduler saves these rows with ``session.bulk_save_objects`` over a generator that pops
        them from ``_task_event_logs``; SQLAlchemy 2.1 holds such objects only weakly, so a row
        nothing else references is collected before its INSERT and the operator never sees the
        reason. Rows are released at the next heartbeat once they have left the deque.
        """
        before = len(self._task_event_logs)
        super().log_task_event(event=event, extra=extra, ti_key=ti_key)
        if len(self._task_event_logs) > before:
            self._event_rows.append(self._task_event_logs[-1])

    def heartbeat(self) -> None:
        self._release_saved_event_rows()
        super().heartbeat()

    def _release_saved_event_rows(self) -> None:
        """Once per heartbeat: the scheduler saves event rows between heartbeats, never during one."""
        waiting = {id(row) for row in self._task_event_logs}
        self._event_rows = [row for row in self._event_rows if id(row) in waiting]

    def _terminate_in_background(self, job_id: str, reason: str) -> None:
        assert self._describe_pool is not None and self.gateway is not None
        future = self._describe_pool.submit(self.gateway.terminate_job, job_id, reason)
        future.add_done_callback(
            lambda done: done.exception()
            and self.log.warning("Could not terminate Batch job %s: %s", job_id, done.exception())
        )

    @staticmethod
    def get_cli_commands() -> list[Any]:
        """``airflow aws-batch-executor check | jobs | render`` (also registered by the provider's ``cli``)."""
        from airflow_batch_executor.cli.definition import get_cli_commands

        return get_cli_commands()

    # -- logs ---------------------------------------------------------------------------------------

    def get_task_log(self, ti: TaskInstance, try_number: int) -> tuple[list[str], list[str]]:
        """The newest lines of a running task's job log; works in the api-server's unstarted executor."""
        job_id = ti.external_executor_id
        if not job_id:
            return [], []
        if self.gateway is None:
            self.gateway = BatchGateway(*connection_options(self.conf))
        try:
            limit = task_log_lines(self.conf)
        except Exception as error:
            return [f"AwsBatchExecutor cannot read task logs: {error}"], []
        return read_task_log(self.gateway, job_id, limit)

    # -- adoption, revocation, shutdown ---------------------------------------------------------

    def _locate(self, ti: TaskInstance) -> tuple[str, str]:
        assert self.options is not None
        spec = routing_spec(ti)
        return job_queue_for(self._base_request, spec, self._default_queue), job_name(spec.identity, self.options.job_name)

    def try_adopt_task_instances(self, tis: Sequence[TaskInstance]) -> Sequence[TaskInstance]:
        """Adopt every task instance whose Batch job still exists, found by id or by its name."""
        assert self.gateway is not None
        try:
            adopted = adoption.find_adoptable_jobs(self.gateway, tis, self._locate)
        except Exception as error:
            self.log.warning("Could not look up Batch jobs to adopt (%s); the scheduler will reset them", error)
            return tis
        for index, job_id in adopted.items():
            ti = tis[index]
            queue, name = self._locate(ti)
            self.tracker.add(
                TrackedJob(job_id=job_id, key=ti.key, job_name=name, job_queue=queue, attempt=1, submitted_at=time.time())
            )
            self.running.add(ti.key)
            if ti.external_executor_id != job_id:
                self.running_state(ti.key, job_id)
        metrics.incr("adopted", len(adopted))
        if adopted:
            self.log.info("Adopted %d task instance(s) with live Batch jobs", len(adopted))
        return [ti for index, ti in enumerate(tis) if index not in adopted]

    def revoke_task(self, *, ti: TaskInstance) -> None:
        """Terminate the task's job with a reason and forget it, without emitting events."""
        key = ti.key
        self.running.discard(key)
        if key in self._submitting and self._submitter is not None:
            self._submitting.discard(key)
            self._submitter.cancel(key)
        job = self.tracker.for_key(key)
        job_id = job.job_id if job is not None else ti.external_executor_id
        if job is not None:
            self.tracker.pop(job.job_id)
        if job_id and self.gateway is not None:
            self.log.info("Revoking %s: terminating Batch job %s", key, job_id)
            self._terminate_in_background(job_id, REVOKE_REASON)

    def end(self) -> None:
        """Called by the scheduler whenever it exits: wait for tracked jobs, unless the exit is forced.

        The scheduler turns SIGTERM and SIGINT into ``SystemExit`` and calls ``end()`` while that
        exception (or the error that stopped its loop) unwinds. Waiting for every Batch job then would
        hold a stopping scheduler for hours, so a forced exit is handled as :meth:`terminate`.
        """
        if self._submitter is None or self._stopped:
            return
        if sys.exc_info()[1] is not None:
            self.log.info("The scheduler is stopping (%r); not waiting for Batch jobs", sys.exc_info()[1])
            self.terminate()
            return
        while self.tracker or self._submitting:
            self.sync()
            time.sleep(END_POLL_SECONDS)
        self._shutdown()

    def terminate(self) -> None:
        """Stop submitting; leave running jobs for the next scheduler unless told to terminate them."""
        if self._submitter is None or self._stopped:
            return
        self._accepting = False
        dropped = self._submitter.drop_waiting()
        if dropped:
            self.log.warning("Shutting down: %d job(s) not yet submitted will be rescheduled", len(dropped))
        assert self.options is not None and self.gateway is not None
        if self.options.terminate_jobs_on_shutdown:
            for job in self.tracker:
                try:
                    self.gateway.terminate_job(job.job_id, SHUTDOWN_REASON)
                except Exception as error:
                    self.log.warning("Could not terminate Batch job %s: %s", job.job_id, error)
        else:
            self.log.info("Shutting down: %d Batch job(s) keep running for the next scheduler", len(self.tracker))
        self._shutdown()

    def _shutdown(self) -> None:
        self._stopped = True
        if self._submitter is not None:
            self._submitter.stop()
        if self._describe_pool is not None:
            self._describe_pool.shutdown(wait=True, cancel_futures=True)
