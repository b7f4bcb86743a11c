"""The job machinery behind the executor: submissions, the state map, job status, and their outcomes.

:class:`JobSupervisor` owns the submit threads, the status poller, the status event receiver (with
``status_queue_url``) and the tracker, and carries out what :mod:`~airflow_batch_executor.rules.lifecycle`
decides. Events and DescribeJobs records take the same path, through ``_on_record``. It knows
nothing of Airflow's executor API: what the scheduler must hear comes back as :class:`TaskEvent`
values, which the executor reports on the scheduler's thread. Every method here runs on that thread
too and never waits on AWS.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from airflow_batch_executor.aws.errors import ApiErrorKind
from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.aws.queue_gateway import StatusQueueGateway
from airflow_batch_executor.job_contract import (
    WAITING_STATUSES,
    array_index,
    batch_reason,
    delivered_marker_key,
    record_object_uri,
)
from airflow_batch_executor.metrics import GLOBAL, Metrics
from airflow_batch_executor.options import ExecutorOptions
from airflow_batch_executor.records import (
    Lookup,
    Orphan,
    Submission,
    SubmitResult,
    TaskEvent,
    TaskState,
    TrackedJob,
    WorkloadKey,
    WorkloadObject,
)
from airflow_batch_executor.recovery.adoption import AdoptionSearch
from airflow_batch_executor.recovery.lookup import REVOKED_PREFIX
from airflow_batch_executor.recovery.manifest import manifest_key
from airflow_batch_executor.recovery.orphan_sweep import OrphanSweep
from airflow_batch_executor.requests.factory import RequestFactory
from airflow_batch_executor.requests.queue_ladder import FALLBACK_EVENT, RECLAIM_EVENT, queue_label
from airflow_batch_executor.requests.task_specs import JobSpec
from airflow_batch_executor.rules.delivery import Delivery, decide
from airflow_batch_executor.rules.lifecycle import (
    Action,
    Decision,
    Limits,
    after_missing,
    after_record,
    after_submit,
)
from airflow_batch_executor.rules.outcome import reclaimed_host
from airflow_batch_executor.rules.waiting import WAITING_EVENT, reason_to_note, waiting_note
from airflow_batch_executor.status.poller import DescribedChunk, StatusPoller
from airflow_batch_executor.status.receiver import ReceivedEvent, StatusEventReceiver
from airflow_batch_executor.status.reducer import Novelty, novelty, progress_of
from airflow_batch_executor.status.tracker import JobTracker, delivery_directory, observe, track_submitted
from airflow_batch_executor.submit.dispatch import Dispatch
from airflow_batch_executor.submit.submitter import Submitter, backoff_delay
from airflow_batch_executor.workloads.handoff import DeliveryResult, WorkloadHandoff

SHUTDOWN_REASON = (
    "Terminated by the Airflow scheduler on shutdown ([aws_batch_executor] terminate_jobs_on_shutdown)"
)
REVOKE_REASON = f"{REVOKED_PREFIX}: the task stayed queued past [scheduler] task_queued_timeout"
GIVEN_UP_REASON = "Stopped by the Airflow scheduler: the AWS Batch executor could no longer track its task"
LATE_ADOPTION_REASON = (
    "Stopped by the Airflow scheduler: this task instance try was handed back when a new scheduler "
    "found no job for it, and a new try was scheduled"
)
CONNECTION_TEST_REAPED_REASON = (
    "Stopped by the Airflow scheduler: the connection test ran out of time ([connection_test] timeout)"
)
# Waiting for capacity: the bootstrap has not fetched the object yet (STARTING is about to).
TOKEN_REFRESH_STATUSES = WAITING_STATUSES - {"STARTING"}
TOKEN_CHECK_SECONDS = 1.0
"""How often waiting jobs' tokens are checked (in memory) for a refresh; Batch sends no event while a
job waits, so this clock, not Batch's news, keeps them fresh."""
ADOPTION_WAIT_SECONDS = 5.0
"""How long ``try_adopt_task_instances`` waits for AWS before adopting the unanswered provisionally."""

UNTRACKED_EVENT_RECEIVES = 10
"""An event for a job this scheduler does not track is left on the queue (for the scheduler that
tracks it, or for this one once its SubmitJob answer is in) until it has been received this often."""

log = logging.getLogger(__name__)


def _failed(key: WorkloadKey, decision: Decision) -> TaskEvent:
    log.error("%s: %s", key, decision.reason)
    return TaskEvent(key, TaskState.FAILED, decision.reason, decision.event)


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
            gateway,
            kms_key_id=options.workload_kms_key_id,
            generator=token_generator,
            metrics=metrics,
            arrays=options.array_jobs and options.workload_transport is not None,
        )
        self._submitter = Submitter(
            Dispatch(gateway, factory, self._handoff, metrics),
            rate=options.submit_rate_limit,
            concurrency=submit_threads(options),
            metrics=metrics,
            on_unwanted_job=lambda job_id: self._terminate_at_once(job_id, REVOKE_REASON),
            arrays=options.array_jobs,
        )
        self._poller = StatusPoller(
            gateway, options.status_poll_interval, forget_object=self._handoff.remove_uri
        )
        self._adoption = AdoptionSearch(gateway)
        self._queues = {options.job_queue}
        self._sweep: OrphanSweep | None = None
        if options.workload_transport is not None:
            self._sweep = OrphanSweep(
                gateway, options.workload_transport, self._poller.terminate, metrics=metrics
            )
        self._next_token_check = 0.0
        self._children: Counter[str] = Counter()
        """Array children tracked per delivery directory: the manifest goes with the last one."""
        self._reconcile_interval = options.status_reconcile_interval
        self._receiver: StatusEventReceiver | None = None
        if options.status_queue_url:
            self._receiver = StatusEventReceiver(
                StatusQueueGateway(
                    options.conn_id,
                    options.region_name,
                    options.status_queue_url,
                    options.team_name,
                    concurrency=options.status_receive_concurrency,
                ),
                metrics,
                concurrency=options.status_receive_concurrency,
            )

    def start(self) -> None:
        self._handoff.start()
        self._submitter.start()
        self._poller.start()
        if self._receiver is not None:
            self._receiver.start()

    @property
    def busy(self) -> bool:
        """True while any job is tracked, any submission is under way or any adoption is searched."""
        return bool(self.tracker) or bool(self._submitter) or bool(self._adoption)

    def submit(self, key: WorkloadKey, request: dict[str, Any], spec: JobSpec) -> WorkloadKey | None:
        """Queue a built request for the submit threads; returns the key of a try it superseded."""
        earlier = self.tracker.supersede(key)
        if earlier is not None:
            log.info("Batch job %s of %s is superseded by a later try", earlier.job_id, earlier.key)
            self._handoff.remove_later(earlier.workload)
            self._child_over(earlier)
        self._queues.update(self._factory.ladder.chain(request["jobQueue"]))
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
        for lookup in self._adoption.results():
            events += self._isolated(lookup.orphan.key, self._on_late_lookup, lookup)
        for delivery in self._handoff.deliveries():
            self._on_delivered(delivery)
        self._poller.hunt()
        self._refresh_waiting_tokens()
        if self._sweep is not None:
            self._sweep.tick(lambda: set(self.tracker.job_ids()), self._queues)
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
            elif submission.maybe_submitted:
                self._hunt(submission, REVOKE_REASON)
            self._handoff.remove_later(submission.workload)
            return []
        decision = after_submit(result, self._limits)
        if decision.action is Action.LOOK_UP:
            submission.look_up_only = True
            delay = backoff_delay(submission.attempt + submission.look_ups)
            log.warning("%s: %s; next look-up in %.1fs", key, decision.reason, delay)
            self._submitter.put(submission, delay)
            return []
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
            if submission.maybe_submitted:
                self._hunt(submission, GIVEN_UP_REASON)
            self._handoff.remove_later(submission.workload)
            return [_failed(key, decision)]
        assert decision.action is Action.TRACK and result.job_id is not None
        self._metrics.incr("submit.ok")
        job = track_submitted(submission, result.job_id, time.time(), result.array_directory)
        self.tracker.add(job)
        if job.directory is not None:
            self._children[job.directory] += 1
        how = "found already submitted" if result.found_existing else "submitted"
        log.info(
            "Batch job %s (%s) %s for %s in job queue %s", job.job_id, job.job_name, how, key, job.job_queue
        )
        events = [TaskEvent(key, TaskState.RUNNING, job.job_id)]
        if submission.fallback is not None and submission.fallback.reason is not None:
            log.warning("%s: %s", key, submission.fallback.reason)
            self._metrics.incr_labelled("fallbacks", queue_label(job.job_queue))
            events.append(TaskEvent(key, None, submission.fallback.reason, FALLBACK_EVENT))
        return events

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
            if item.event.blocked:
                self._metrics.incr("status_events.queue_blocked")
            if verdict is Novelty.NEWS or (item.event.blocked and verdict is Novelty.DUPLICATE):
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
            was_started = job.started
            if observe(job, record):
                self._metrics.incr_labelled("jobs.status", job.status)
                if job.status_reason and not job.started:
                    log.info(
                        "Batch job %s for %s is %s: %s", job.job_id, job.key, job.status, job.status_reason
                    )
            decision = after_record(job, record, self._limits, time.time())
            if decision.reason_class == "unknown_status":
                log.warning("%s", decision.reason)
            directory = delivery_directory(record)
            if directory is not None:
                if job.directory is None:  # adopted: its array is known from its record
                    job.directory = directory
                    self._children[directory] += 1
                self._deliver(job, record, directory)
            elif job.workload is None and (uri := record_object_uri(record)) is not None:
                job.workload = WorkloadObject(uri, adopted=True)
            started = self._on_start(job) if job.started and not was_started else []
            if decision.action is Action.WAIT:
                return started + self._note_waiting(job)
            if decision.action in (Action.FAIL, Action.RESUBMIT) and (host := reclaimed_host(record)):
                return started + self._on_reclaim(job, host) + self._carry_out(job, decision)
            return started + self._carry_out(job, decision)
        return self._carry_out(job, decision)

    def _deliver(self, job: TrackedJob, record: dict[str, Any], directory: str) -> None:
        """Give an array child that started its workload (``rules.delivery``), in the background."""
        container = record.get("container")
        task_arn = container.get("taskArn") if isinstance(container, dict) else None
        if job.delivering or decide(job.status, task_arn, job.delivered_to) is not Delivery.DELIVER:
            return
        assert task_arn is not None
        spec = job.submission.spec if job.submission is not None else None
        if spec is None or spec.workload is None:
            log.warning(
                "Batch job %s of %s started, but this scheduler has no workload to give it (it adopted "
                "the job before it started); it ends without running the task and is failed",
                job.job_id,
                job.key,
            )
            job.delivering = True  # nothing will ever be delivered from here: said once
            return
        job.delivering = True
        self._handoff.deliver_later(job.job_id, directory, task_arn, spec.workload)

    def _on_delivered(self, result: DeliveryResult) -> None:
        """A delivery came back: once the child's container started too, its task may have started,
        so it is never resubmitted; its object is removed when the child ends. A failed delivery is
        asked again on the child's next record."""
        job = self.tracker.get(result.job_id)
        done = result.delivered
        if job is None:
            if done is not None and done.object_uri is not None:
                self._handoff.remove_uri(done.object_uri)
            return
        job.delivering = False
        if done is None:
            return
        job.delivered_to = done.task_arn
        if job.started:
            job.submission = None
        if done.object_uri is not None:
            job.workload = WorkloadObject(done.object_uri)
            log.info("Delivered the workload of %s to Batch job %s (%s)", job.key, job.job_id, done.task_arn)

    @staticmethod
    def _on_start(job: TrackedJob) -> list[TaskEvent]:
        """The job id again, once its container started, so the scheduler stores it after all.

        Airflow's scheduler reads the RUNNING event sent at submission under ``SKIP LOCKED``: if the
        task's row is locked at that moment (the task's own first API call, say), the event is
        dropped and the try never gets this job as its external executor id, which adoption, the UI
        and ``get_task_log`` read. Storing the id is idempotent, so the repeat is harmless; and the
        executor holds the outcome until the scheduler has read it (``AwsBatchExecutor._report``).
        """
        return [TaskEvent(job.key, TaskState.RUNNING, job.job_id)]

    def _child_over(self, job: TrackedJob) -> None:
        """An array child is over for this scheduler: its marker goes (no later attempt of an ended
        child can start), and its array's manifest with the last child this scheduler tracks of it."""
        if job.directory is None:
            return
        if job.submission is None or job.workload is not job.submission.workload:
            self._handoff.remove_later(job.workload)  # delivered to it; a resubmission writes its own
        self._handoff.remove_uri(delivered_marker_key(job.directory, array_index(job.job_id)))
        self._children[job.directory] -= 1
        if self._children[job.directory] <= 0:
            del self._children[job.directory]
            self._handoff.remove_uri(manifest_key(job.directory))

    def _on_reclaim(self, job: TrackedJob, host: str) -> list[TaskEvent]:
        """Count a job Spot took back, for the task's next job's queue (``queue_fallbacks``), and say so."""
        self._metrics.incr_labelled("reclaims", queue_label(job.job_queue))
        if job.submission is not None:  # reclaimed before it started: its try's next job counts it
            reclaims = job.submission.reclaims
            reclaims[job.job_queue] = reclaims.get(job.job_queue, 0) + 1
        note = self._factory.ladder.reclaim_note(host, job.job_id, job.job_name, job.job_queue)
        log.warning("%s: %s", job.key, note)
        return [TaskEvent(job.key, None, note, RECLAIM_EVENT)]

    def _note_waiting(self, job: TrackedJob) -> list[TaskEvent]:
        """One event-log row per new reason a waiting job gives, with what to do about it."""
        reason = reason_to_note(job.status, job.status_reason, job.noted_reason)
        if reason is None:
            return []
        job.noted_reason = reason
        self._metrics.incr("jobs.waiting_reason")
        note = waiting_note(job.job_id, job.job_name, job.job_queue, job.status, reason)
        return [TaskEvent(job.key, None, note, WAITING_EVENT)]

    def _refresh_waiting_tokens(self) -> None:
        """Queue a token refresh for each waiting job whose token has half its lifetime left."""
        now = time.monotonic()
        if now < self._next_token_check or not self._handoff.signs_tokens:
            return
        self._next_token_check = now + TOKEN_CHECK_SECONDS
        wall = time.time()
        for job in self.tracker:
            obj = job.workload
            if obj is None or job.started or job.status not in TOKEN_REFRESH_STATUSES:
                continue
            if obj.refresh_due(wall):
                spec = job.submission.spec if job.submission is not None else None
                self._handoff.refresh_later(obj, spec.workload if spec is not None else None)

    def _carry_out(self, job: TrackedJob, decision: Decision) -> list[TaskEvent]:
        if decision.action is Action.WAIT:
            return []
        self.tracker.pop(job.job_id)
        self._child_over(job)
        if decision.action is not Action.RESUBMIT:
            self._handoff.remove_later(job.workload)
        if decision.action is Action.SUCCEED:
            log.info("Batch job %s for %s succeeded", job.job_id, job.key)
            return [TaskEvent(job.key, TaskState.SUCCESS, job.job_id)]
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
            self.revoke(key, None, GIVEN_UP_REASON)
            reason = (
                f"The AWS Batch executor could not track this task ({error!r}), so it stopped its Batch "
                "job and failed this try; Airflow's retries decide what happens next."
            )
            return [_failed(key, Decision(Action.FAIL, reason, "batch job lost"))]

    def _hunt(self, submission: Submission, reason: str) -> None:
        """Terminate the job a SubmitJob with a lost answer may have made, once ListJobs shows it (in
        any queue of the task's ``queue_fallbacks`` ladder)."""
        for job_queue in self._factory.ladder.chain(submission.request["jobQueue"]):
            self._poller.terminate_by_name(job_queue, submission.job_name, reason, submission.submission_id)

    def revoke(self, key: WorkloadKey, known_job_id: str | None, reason: str = REVOKE_REASON) -> None:
        """Stop submitting, tracking and searching for this workload, and terminate its job wherever it
        may be: the tracked one, the id Airflow stored, or one only its name can find.

        Its workload object is removed and its known job terminated before this returns, so a scheduler
        that dies next leaves no job that could run the task. A job whose SubmitJob is still on the wire
        is terminated when its answer arrives.
        """
        submission, in_flight = self._submitter.forget(key)
        if submission is not None:
            self._handoff.remove_now(submission.workload)
            if submission.maybe_submitted and not in_flight:
                self._hunt(submission, reason)
        if (orphan := self._adoption.cancel(key)) is not None:
            self._hunt_orphan(orphan, reason)
        job = self.tracker.for_key(key)
        if job is not None:
            self._handoff.remove_now(job.workload)
            self.tracker.pop(job.job_id)
            self._child_over(job)
        job_id = job.job_id if job is not None else known_job_id
        if job_id:
            log.info("%s: terminating Batch job %s (%s)", key, job_id, reason)
            self._terminate_now(job_id, reason)

    def _terminate_now(self, job_id: str, reason: str) -> None:
        """TerminateJob before returning, so that a scheduler that dies next cannot leave the job to run
        beside the requeued try (whose job has the same name); again in the background (which also
        removes the job's object) in case AWS did not answer at once."""
        self._terminate_at_once(job_id, reason)
        self._poller.terminate(job_id, reason)

    def _terminate_at_once(self, job_id: str, reason: str) -> None:
        try:
            self._gateway.terminate_job(job_id, reason, urgent=True)
        except Exception as error:  # noqa: BLE001 - the background attempt retries with backoff
            log.warning("Could not terminate Batch job %s at once (%s); retrying", job_id, error)

    def _hunt_orphan(self, orphan: Orphan, reason: str) -> None:
        if orphan.job_name is not None:
            for job_queue in orphan.queues:
                self._poller.terminate_by_name(job_queue, orphan.job_name, reason)

    def adopt(
        self, orphans: list[Orphan]
    ) -> tuple[dict[WorkloadKey, str], list[WorkloadKey], list[WorkloadKey]]:
        """Adopt a dead scheduler's task instances: the job id of each one whose job was found, the
        keys adopted while their job is still searched for, and the keys handed back.

        Waits at most ``ADOPTION_WAIT_SECONDS`` for AWS. An orphan whose look-up is not answered by
        then is adopted all the same, and searched for in the background (see :mod:`adoption`); only
        one proven to have no job is handed back.
        """
        answered, searching = self._adoption.search(orphans, ADOPTION_WAIT_SECONDS)
        adopted: dict[WorkloadKey, str] = {}
        handed_back: list[WorkloadKey] = []
        for lookup in answered:
            if lookup.job is None:
                handed_back.append(lookup.orphan.key)
                self._hunt_orphan(lookup.orphan, LATE_ADOPTION_REASON)
            else:
                adopted[lookup.orphan.key] = self._track_adopted(lookup).job_id
        if searching:
            log.warning(
                "AWS did not answer in time for %d adopted task instance(s); they stay adopted while "
                "their Batch jobs are looked up in the background",
                len(searching),
            )
        self._metrics.incr("adopted", len(adopted) + len(searching))
        self._metrics.incr("adoption.handed_back", len(handed_back))
        return adopted, [orphan.key for orphan in searching], handed_back

    def _track_adopted(self, lookup: Lookup) -> TrackedJob:
        assert lookup.job is not None
        found = lookup.job
        job = TrackedJob(found.job_id, lookup.orphan.key, found.job_name, found.job_queue, 1, time.time())
        self.tracker.add(job)
        self._queues.add(found.job_queue)
        return job

    def _on_late_lookup(self, lookup: Lookup) -> list[TaskEvent]:
        """A background adoption look-up answered: track the job found, or fail the try that has none."""
        key = lookup.orphan.key
        if lookup.job is not None:
            job = self._track_adopted(lookup)
            log.info("Found Batch job %s of adopted %s", job.job_id, key)
            return (
                [TaskEvent(key, TaskState.RUNNING, job.job_id)]
                if job.job_id != lookup.orphan.external_id
                else []
            )
        self._hunt_orphan(lookup.orphan, LATE_ADOPTION_REASON)
        self._metrics.incr("adoption.not_found")
        where = (
            f"by its job name {lookup.orphan.job_name} in {lookup.orphan.job_queue}"
            if lookup.orphan.job_name
            else "by the job id Airflow stored"
        )
        return [
            _failed(
                key,
                Decision(
                    Action.FAIL,
                    f"This task instance was adopted from a scheduler that stopped, and no AWS Batch job "
                    f"exists for this try (looked up {where}): the old scheduler stopped before "
                    "submitting it. This try is failed; Airflow's retries decide what happens next.",
                    "batch job lost",
                ),
            )
        ]

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
        self._adoption.stop()
        self._submitter.stop()
        self._poller.stop()
        self._handoff.stop()
        if self._receiver is not None:
            self._receiver.stop()
