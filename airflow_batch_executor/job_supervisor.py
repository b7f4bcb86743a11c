"""The job machinery behind the executor: submissions, the state map, job status, and their outcomes.

:class:`JobSupervisor` owns the submit threads, the status poller, the status event receiver (with
``status_queue_url``) and the tracker, and carries out what :mod:`~airflow_batch_executor.lifecycle`
decides. Events and DescribeJobs records take the same path, through ``_on_record``. It knows
nothing of Airflow's executor API: what the scheduler must hear comes back as :class:`TaskEvent`
values, which the executor reports on the scheduler's thread. Every method here runs on that thread
too and never waits on AWS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from airflow_batch_executor.aws_errors import ApiErrorKind
from airflow_batch_executor.batch_facts import WAITING_STATUSES, batch_reason
from airflow_batch_executor.event_reducer import Novelty, novelty, progress_of
from airflow_batch_executor.gateway import BatchGateway
from airflow_batch_executor.job_lookup import FoundJob
from airflow_batch_executor.lifecycle import (
    Action,
    Decision,
    Limits,
    after_missing,
    after_record,
    after_submit,
)
from airflow_batch_executor.metrics import GLOBAL, Metrics
from airflow_batch_executor.options import ExecutorOptions
from airflow_batch_executor.poller import DescribedChunk, StatusPoller
from airflow_batch_executor.queue_gateway import StatusQueueGateway
from airflow_batch_executor.request_factory import RequestFactory
from airflow_batch_executor.status_events import ReceivedEvent, StatusEventReceiver
from airflow_batch_executor.submitter import Submission, SubmitResult, Submitter, backoff_delay
from airflow_batch_executor.task_specs import JobSpec
from airflow_batch_executor.tracker import JobTracker, TrackedJob, WorkloadKey
from airflow_batch_executor.workload_transport import WorkloadHandoff, record_object_uri

SHUTDOWN_REASON = (
    "Terminated by the Airflow scheduler on shutdown ([aws_batch_executor] terminate_jobs_on_shutdown)"
)
REVOKE_REASON = (
    "Revoked by the Airflow scheduler: the task stayed queued past [scheduler] task_queued_timeout"
)
CONNECTION_TEST_REAPED_REASON = (
    "Stopped by the Airflow scheduler: the connection test ran out of time ([connection_test] timeout)"
)
# Waiting for capacity: the bootstrap has not fetched the object yet (STARTING is about to).
TOKEN_REFRESH_STATUSES = WAITING_STATUSES - {"STARTING"}

UNTRACKED_EVENT_RECEIVES = 10
"""An event for a job this scheduler does not track is left on the queue (for the scheduler that
tracks it, or for this one once its SubmitJob answer is in) until it has been received this often."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskEvent:
    """What the scheduler must hear about one workload.

    ``state`` is ``running`` (``info`` is the job id), ``success`` (the job id), ``failed`` (the
    reason) or None for an event-log row alone; ``log_event`` names the row of the task's event log
    that carries ``info`` to the operator.
    """

    key: WorkloadKey
    state: str | None
    info: str
    log_event: str = ""


def _failed(key: WorkloadKey, decision: Decision) -> TaskEvent:
    log.error("%s: %s", key, decision.reason)
    return TaskEvent(key, "failed", decision.reason, decision.event)


def submit_threads(options: ExecutorOptions) -> int:
    """Submit threads: with S3, each attempt makes two calls in a row (PutObject, then SubmitJob),
    so twice the threads keep the submit rate that ``submit_concurrency`` gives with the command."""
    return options.submit_concurrency * (2 if options.workload_transport is not None else 1)


class JobSupervisor:
    def __init__(
        self,
        gateway: BatchGateway,
        factory: RequestFactory,
        options: ExecutorOptions,
        token_generator: Any | None = None,
        metrics: Metrics = GLOBAL,
    ) -> None:
        """``token_generator`` signs a fresh workload token per submission; None keeps the scheduler's."""
        self.tracker = JobTracker()
        self._metrics = metrics
        self._gateway = gateway
        self._factory = factory
        self._limits = Limits.from_options(options)
        self._handoff = WorkloadHandoff(
            gateway, kms_key_id=options.workload_kms_key_id, generator=token_generator
        )
        self._submitter = Submitter(
            gateway,
            rate=options.submit_rate_limit,
            concurrency=submit_threads(options),
            factory=factory,
            handoff=self._handoff,
            metrics=metrics,
        )
        self._poller = StatusPoller(gateway, options.status_poll_interval)
        self._reconcile_interval = options.status_reconcile_interval
        self._receiver: StatusEventReceiver | None = None
        if options.status_queue_url:
            self._receiver = StatusEventReceiver(
                StatusQueueGateway(
                    options.conn_id, options.region_name, options.status_queue_url, options.team_name
                ),
                metrics,
            )

    def start(self) -> None:
        self._submitter.start()
        self._poller.start()
        if self._receiver is not None:
            self._receiver.start()

    @property
    def busy(self) -> bool:
        """True while any job is tracked or any submission is under way."""
        return bool(self.tracker) or bool(self._submitter)

    @property
    def submit_rate(self) -> float:
        return self._submitter.limiter.rate

    def submit(self, key: WorkloadKey, request: dict[str, Any], spec: JobSpec) -> WorkloadKey | None:
        """Queue a built request for the submit threads; returns the key of a try it superseded."""
        earlier = self.tracker.supersede(key)
        if earlier is not None:
            log.info("Batch job %s of %s is superseded by a later try", earlier.job_id, earlier.key)
            self._handoff.remove_later(earlier.workload_uri)
        self._submitter.submit(Submission(key=key, request=request, spec=spec))
        return earlier.key if earlier is not None else None

    def sync(self) -> list[TaskEvent]:
        """Handle finished submissions, status events and DescribeJobs answers; poll when due."""
        events: list[TaskEvent] = []
        for result in self._submitter.results():
            events += self._isolated(result.submission.key, self._on_submit_result, result)
        if self._receiver is not None:
            events += self._on_status_events(self._receiver.results())
        for chunk in self._poller.results():
            events += self._on_chunk(chunk)
        if self._poller.due() and self.tracker:
            self._poller.poll(self._jobs_to_describe())
        self._metrics.gauge("jobs.tracked", len(self.tracker))
        self._metrics.gauge("jobs.submitting", len(self._submitter))
        return events

    def _on_submit_result(self, result: SubmitResult) -> list[TaskEvent]:
        submission, key = result.submission, result.submission.key
        if not self._submitter.is_live(submission):
            if result.job_id:
                log.warning(
                    "Batch job %s was submitted for %s after it was revoked; terminating it",
                    result.job_id,
                    key,
                )
                self._poller.terminate(result.job_id, REVOKE_REASON)
            self._handoff.remove_later(submission.workload_uri)
            return []
        decision = after_submit(result, self._limits)
        if decision.action is Action.RESUBMIT:
            delay = backoff_delay(submission.attempt)
            self._metrics.incr_labelled("submit.retried", decision.reason_class)
            if result.error_kind is ApiErrorKind.THROTTLED:
                self._metrics.incr("throttled")
            log.warning("%s: %s; retrying in %.1fs", key, decision.reason, delay)
            self._submitter.put(submission, delay)
            return []
        self._submitter.done(submission)
        if decision.action is Action.FAIL:
            self._metrics.incr("submit.failed")
            self._handoff.remove_later(submission.workload_uri)
            return [_failed(key, decision)]
        assert result.job_id is not None
        self._metrics.incr("submit.ok")
        job = TrackedJob.submitted(submission, result.job_id, time.time())
        self.tracker.add(job)
        how = "found already submitted" if result.found_existing else "submitted"
        log.info("Batch job %s (%s) %s for %s", job.job_id, job.job_name, how, key)
        return [TaskEvent(key, "running", job.job_id)]

    def _jobs_to_describe(self) -> list[str]:
        """Every job, unless events are flowing: then only those Batch said nothing of for a while.

        A job just adopted has never been heard of, so it is described at once.
        """
        if self._receiver is None or not self._receiver.answering:
            return self.tracker.job_ids()
        return self.tracker.quiet_job_ids(time.time() - self._reconcile_interval)

    def _on_status_events(self, received: list[ReceivedEvent]) -> list[TaskEvent]:
        assert self._receiver is not None
        events: list[TaskEvent] = []
        done: list[str] = []
        for item in received:
            job = self.tracker.get(item.event.job_id)
            if job is None:
                self._metrics.incr("status_events.untracked")
                if item.receive_count >= UNTRACKED_EVENT_RECEIVES:
                    done.append(item.receipt)
                continue
            done.append(item.receipt)
            verdict = novelty(job.progress, job.status, item.event)
            if verdict is Novelty.NEWS:
                events += self._isolated(job.key, self._on_record, job, item.event.record)
            else:
                self._metrics.incr(f"status_events.{verdict.value}")
        self._receiver.acknowledge(done)
        return events

    def _on_chunk(self, chunk: DescribedChunk) -> list[TaskEvent]:
        if chunk.records is None:
            return []
        answered = {record.get("jobId"): record for record in chunk.records if isinstance(record, dict)}
        events: list[TaskEvent] = []
        for job_id in chunk.asked:
            if (job := self.tracker.get(job_id)) is not None:
                record = answered.get(job_id)
                if record is not None and self._events_missed(job, record):
                    self._metrics.incr("status_events.missed")
                    log.info(
                        "Batch job %s is %s: its status event was lost or late", job_id, record["status"]
                    )
                events += self._isolated(job.key, self._on_record, job, record)
        return events

    def _events_missed(self, job: TrackedJob, record: dict[str, Any]) -> bool:
        """True when a reconciliation finds a job further along than the events had told."""
        if self._receiver is None or not self._receiver.answering or job.progress is None:
            return False
        return progress_of(record) > job.progress

    def _on_record(self, job: TrackedJob, record: dict[str, Any] | None) -> list[TaskEvent]:
        if record is None:
            job.missing_checks += 1
            decision = after_missing(job, self._limits)
            if decision.action is Action.WAIT:
                log.warning("%s", decision.reason)
        else:
            job.heard_at = time.time()
            if job.observe(record):
                self._metrics.incr_labelled("jobs.status", job.status)
                if job.status_reason and not job.started:
                    log.info(
                        "Batch job %s for %s is %s: %s", job.job_id, job.key, job.status, job.status_reason
                    )
            decision = after_record(job, record, self._limits, time.time())
            if decision.reason_class == "unknown_status":
                log.warning("%s", decision.reason)
            if job.workload_uri is None:
                job.workload_uri = record_object_uri(record)
        return self._carry_out(job, decision)

    def _carry_out(self, job: TrackedJob, decision: Decision) -> list[TaskEvent]:
        if decision.action is Action.WAIT:
            if (
                job.workload_uri
                and job.status in TOKEN_REFRESH_STATUSES
                and self._handoff.refresh_due(job.submission, time.time())
            ):
                assert job.submission is not None
                self._handoff.refresh_later(job.submission, job.workload_uri)
            return []
        self.tracker.pop(job.job_id)
        if decision.action is not Action.RESUBMIT:
            self._handoff.remove_later(job.workload_uri)
        if decision.action is Action.SUCCEED:
            log.info("Batch job %s for %s succeeded", job.job_id, job.key)
            return [TaskEvent(job.key, "success", job.job_id)]
        if decision.action is Action.RESUBMIT:
            assert job.submission is not None
            delay = backoff_delay(job.attempt)
            self._metrics.incr_labelled("resubmitted", decision.reason_class)
            log.warning("%s: %s Next attempt in %.1fs.", job.key, decision.reason, delay)
            self._submitter.submit(job.submission, delay)
            return [TaskEvent(job.key, None, decision.reason, decision.event)]
        if decision.action is Action.TERMINATE:
            self._poller.terminate(job.job_id, batch_reason(decision.reason))
        return [_failed(job.key, decision)]

    def _isolated(
        self, key: WorkloadKey, handler: Callable[..., list[TaskEvent]], *args: Any
    ) -> list[TaskEvent]:
        """Run one handler so that a failure affects only its own task.

        The task is failed rather than dropped: a task the executor silently forgets would stay
        queued or running in Airflow's database forever.
        """
        try:
            return handler(*args)
        except Exception as error:
            log.exception("Handling the Batch job of %s failed", key)
            self.forget(key)
            reason = f"The AWS Batch executor could not track this task: {error!r}"
            return [_failed(key, Decision(Action.FAIL, reason, "batch job lost"))]

    def forget(self, key: WorkloadKey) -> TrackedJob | None:
        """Stop submitting and tracking this workload, wherever it is; returns its job if tracked."""
        if (submission := self._submitter.forget(key)) is not None:
            self._handoff.remove_later(submission.workload_uri)
        job = self.tracker.for_key(key)
        if job is None:
            return None
        self._handoff.remove_later(job.workload_uri)
        return self.tracker.pop(job.job_id)

    def revoke(self, key: WorkloadKey, known_job_id: str | None, reason: str = REVOKE_REASON) -> None:
        """Forget the workload and terminate its job: the tracked one, or the id Airflow stored.

        A job whose SubmitJob is still on the wire is terminated when its answer arrives.
        """
        job = self.forget(key)
        job_id = job.job_id if job is not None else known_job_id
        if job_id:
            log.info("Revoking %s: terminating Batch job %s", key, job_id)
            self._poller.terminate(job_id, reason)

    def adopt(self, adopted: Iterable[tuple[WorkloadKey, FoundJob]]) -> None:
        for key, found in adopted:
            self.tracker.add(TrackedJob(found.job_id, key, found.job_name, found.job_queue, 1, time.time()))

    def stop(self, *, terminate_jobs: bool) -> None:
        """Stop submitting; terminate the tracked jobs, or leave them for the next scheduler."""
        if dropped := self._submitter.drop_waiting():
            log.warning("Shutting down: %d job(s) not yet submitted will be rescheduled", len(dropped))
        if terminate_jobs:
            for job in self.tracker:
                try:
                    self._gateway.terminate_job(job.job_id, SHUTDOWN_REASON)
                except Exception as error:  # noqa: BLE001 - one failure must not stop the rest
                    log.warning("Could not terminate Batch job %s: %s", job.job_id, error)
        elif self.tracker:
            log.info("Shutting down: %d Batch job(s) keep running for the next scheduler", len(self.tracker))
        self._factory.close()
        self._submitter.stop()
        self._poller.stop()
        self._handoff.stop()
        if self._receiver is not None:
            self._receiver.stop()
