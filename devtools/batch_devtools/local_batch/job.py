"""A moto Batch job that runs its container command as a local process instead of in Docker.

moto's ``Job`` is a ``threading.Thread`` whose ``run`` drives the job through its statuses and
runs a Docker container. :class:`LocalJob` keeps moto's constructor (so moto's ``submit_job``,
``terminate_job`` and ``cancel_job`` work unchanged) and replaces ``run`` (the lifecycle),
``terminate`` (which must reach a running process) and ``describe``/``describe_short`` (which
in moto drop ``container.exitCode``, report ``startedAt`` for jobs that never started and
mutate the submitted environment on every call).

Statuses are owned by the lifecycle thread: moto's ``ManagedState`` would otherwise advance
them whenever DescribeJobs reads them. In hold mode (``JobSettings.job_mode = "hold"``, see
``hold.py``) no thread is started: the status follows a plan made at submission, on every read. In
inline mode (``inline.py``) the executor's workload commands run in the job's thread, not a process.

Array jobs (``array.py``): the parent is a LocalJob that runs nothing and has no thread; its status
follows its children's, each child telling it of every change. Children are LocalJobs like any other.

Blocked queues (``queues.py``): a job of a blocked queue waits in RUNNABLE, the block's reason as its
statusReason, until the queue is unblocked; a held job's plan stands still meanwhile.

Batch-level retries: a job whose ``retryStrategy.attempts`` (the SubmitJob request's, else its
definition's) is above 1 goes back to RUNNABLE after a failed attempt while attempts are left,
unless ``evaluateOnExit`` says EXIT, the attempt timed out or the job was terminated (AWS retries
neither). ``attempts[]`` lists the finished attempts; the top-level fields describe the latest one.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from moto.batch.models import Job

from airflow_batch_executor.job_contract import ARRAY_INDEX_VARIABLE, TASK_METADATA_VARIABLE
from batch_devtools.local_batch.array import SIZE_VARIABLE, ArrayParent, parent_id
from batch_devtools.local_batch.ecs import DEFAULT_CLUSTER, EcsTask, metadata_uri, new_task
from batch_devtools.local_batch.environment import FAKE_ACCESS_KEY, FAKE_SECRET_KEY
from batch_devtools.local_batch.faults import (
    HOST_TERMINATED_REASON,
    JobFault,
    job_subject,
    permanent_pull_error,
    transient_pull_error,
)
from batch_devtools.local_batch.hold import STEPS_TO_RUNNABLE, HoldPlan, comes_after, plan_hold
from batch_devtools.local_batch.inline import InlineContainer, InlineWorkload, inline_workload, run_inline
from batch_devtools.local_batch.logsink import CloudWatchLogSink
from batch_devtools.local_batch.runner import ProcessRunner
from batch_devtools.local_batch.runtime import HOLD, INLINE, active_runtime

logger = logging.getLogger(__name__)

SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING = "SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"
SUCCEEDED, FAILED = "SUCCEEDED", "FAILED"
FINAL_STATUSES = frozenset({SUCCEEDED, FAILED})
NOT_STARTED = frozenset({SUBMITTED, PENDING, RUNNABLE})
"""The statuses CancelJob cancels a job in (one that reached STARTING must be terminated instead)."""

CONTAINER_EXITED = "Essential container in task exited"
FAILED_TO_START = "Task failed to start"
TIMED_OUT = "Job attempt duration exceeded timeout"
DEPENDENCY_FAILED = "Dependent Job failed"
DEFAULT_LOG_GROUP = "/aws/batch/job"
POLL_SECONDS = 0.05


def _now_ms() -> int:
    return int(time.time() * 1000)


_submission = threading.local()


@contextlib.contextmanager
def submission_options(**options: Any) -> Iterator[None]:
    """What moto's ``submit_job`` does not hand to the job it builds (the request's ``retry_strategy``,
    the ``job_queue`` and ``job_definition`` as requested), for the jobs built on this thread meanwhile."""
    previous = dict(getattr(_submission, "options", {}))
    _submission.options = {**previous, **options}
    try:
        yield
    finally:
        _submission.options = previous


def _submitted(option: str) -> Any:
    return getattr(_submission, "options", {}).get(option)


@dataclass(frozen=True)
class AttemptEnd:
    """How one attempt ended, before Batch decides whether the job is retried."""

    status: str
    reason: str | None
    exit_code: int | None = None
    container_reason: str | None = None
    timed_out: bool = False


def retried_by_strategy(strategy: dict[str, Any], end: AttemptEnd) -> bool:
    """Whether ``evaluateOnExit`` lets Batch retry this failed attempt.

    As AWS: the first entry whose conditions (``onStatusReason``, ``onReason`` for the container's
    reason, ``onExitCode``; glob patterns) all match decides by its ``action``; none matching retries.
    """
    exit_code = None if end.exit_code is None else str(end.exit_code)
    for rule in strategy.get("evaluateOnExit") or []:
        conditions = (
            (rule.get("onStatusReason"), end.reason),
            (rule.get("onReason"), end.container_reason),
            (rule.get("onExitCode"), exit_code),
        )
        if all(
            pattern is None or (value is not None and fnmatch.fnmatchcase(value, pattern))
            for pattern, value in conditions
        ):
            return str(rule.get("action", "")).lower() == "retry"
    return True


def _merge_named(
    base: list[dict[str, Any]], override: list[dict[str, Any]], key: str
) -> list[dict[str, Any]]:
    """Merge two AWS name/value lists; entries of ``override`` replace same-keyed ones of ``base``."""
    merged = {item[key]: dict(item) for item in base}
    for item in override:
        merged[item[key]] = dict(item)
    return list(merged.values())


class LocalJob(Job):
    """One submitted Batch job, run as a local process group by its own thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.runtime = active_runtime()
        self._lock = threading.RLock()
        self._wakeup = threading.Event()
        self._released = threading.Event()
        self._created_ms = _now_ms()
        self._started_ms: int | None = None
        self._stopped_ms: int | None = None
        self._status_reason: str | None = None
        self._exit_code: int | None = None
        self._container_reason: str | None = None
        self._termination_reason: str | None = None
        self._log_stream: str | None = None
        self._retry_strategy: dict[str, Any] = copy.deepcopy(
            _submitted("retry_strategy") or self.job_definition.retry_strategy or {}
        )
        self._attempt_number = 1
        self._attempts: list[dict[str, Any]] = []
        """Finished attempts, as DescribeJobs lists them."""
        self._current: dict[str, Any] | None = None
        """The attempt under way (from its container's start, or its failure to start)."""
        self._task: EcsTask | None = None
        """The ECS task of the attempt under way, from its STARTING to its end."""
        self._latest_task_arn: str | None = None
        """The latest attempt's task ARN (DescribeJobs' ``container.taskArn``), until the next attempt."""
        self._extra_attempts = 0
        self._lost_at_end: JobFault | None = None
        self._mode = self.runtime.settings.job_mode
        self._pid: int | None = None
        self._runner: ProcessRunner | InlineContainer | None = None
        self._hold: HoldPlan | None = None
        self._stuck_reason: str | None = None
        """Process mode: set while the attempt under way waits in RUNNABLE for ``stuck_in_runnable``."""
        self._blocked_reason: str | None = None
        """The reason of the queue block that holds the job in RUNNABLE (``Faults.block_queue``)."""
        self._blocked_at: float | None = None
        """Hold mode: the moment of its plan at which a blocked queue stopped the job in RUNNABLE."""
        self._runnable_ms: int | None = None
        """When the job last reached RUNNABLE: its place in its queue (GetJobQueueSnapshot)."""
        self.vanished = False
        """Set once a ``vanish`` fault made the finished job disappear from DescribeJobs and ListJobs."""
        size = self.array_properties.get("size")
        self.array: ArrayParent | None = ArrayParent(size) if size is not None else None
        """Set on an array's parent: its children and how many are in each status."""
        self.array_index: int | None = self.array_properties.get("index")
        """Set on an array's child: its ``AWS_BATCH_JOB_ARRAY_INDEX``."""
        self._array_parent: LocalJob | None = None
        self._fault_subject = job_subject(self.job_name, self.array_index)
        self.runtime.jobs.register(self)
        if self.array_index is not None:  # an array's children are not submissions
            parent = self.runtime.jobs.get(parent_id(self.job_id))
            if parent is None or parent.array is None:
                raise RuntimeError(f"array child {self.job_id} has no parent in this local Batch")
            with parent._lock:
                parent.array.adopt(self)
            self._array_parent = parent
        else:
            self.runtime.history.record(
                "submit",
                jobId=self.job_id,
                jobName=self.job_name,
                jobQueue=_submitted("job_queue") or self.job_queue.name,
                jobDefinition=_submitted("job_definition") or self.job_definition.arn,
                jobDefinitionArn=self.job_definition.arn,
                command=copy.deepcopy(self.container_overrides.get("command")),
            )
        if self.array is not None:  # moto never starts a parent: its events begin here
            self._announce()
            self._announcing = True

    @property
    def _status(self) -> str | None:
        return self.__dict__.get("_current_status")

    @_status.setter
    def _status(self, value: str | None) -> None:
        """Every status change goes through here (moto's init too), so each one can be published."""
        previous = self.__dict__.get("_current_status")
        self.__dict__["_current_status"] = value
        if value == previous:
            return
        if value == STARTING:
            self._begin_task()
        if self.__dict__.get("_announcing"):
            self._announce()
        parent = self.__dict__.get("_array_parent")
        if parent is not None and previous is not None and value is not None:
            parent._child_moved(previous, value)

    def _child_moved(self, previous: str, current: str) -> None:
        """Count a child's status change and move this parent to the status its children now give it.

        Called with the child's lock held: a parent never takes a child's lock while it holds its own.
        """
        assert self.array is not None, "only an array's parent has children"
        with self._lock:
            self.array.moved(previous, current)
            status = self.array.status
            if status == self._status or self.finished:
                return
            if status not in FINAL_STATUSES:
                self._status = status
                return
            stopped = max(child._stopped_ms or 0 for child in self.array.children)
            self._finish(status, self._termination_reason if status == FAILED else None, at_ms=stopped)

    def _announce(self) -> None:
        events = self.runtime.events
        if events is not None and events.enabled:
            with self._lock:
                events.publish(self._detail())

    def start(self) -> None:
        """moto calls this right after submit_job built the job: run it, or plan it in hold mode."""
        self._announce()
        self._announcing = True
        settings = self.runtime.settings
        if self._mode != HOLD:
            super().start()
            return
        faults, subject = self.runtime.faults, self._fault_subject
        stuck = faults.claim_stuck_in_runnable(subject)
        pull_failure = faults.claim_fail_before_start(subject) if stuck is None else None
        starts = stuck is None and pull_failure is None
        host_fault = faults.claim_host_terminated(subject) if starts else None
        exit_fault = faults.claim_fail_after_start(subject) if starts else None
        duration = self._get_attempt_duration()
        with self._lock:
            self._hold = plan_hold(
                created=self._created_ms / 1000,
                step_delay=settings.step_delay,
                hold_seconds=settings.hold_seconds,
                timeout_seconds=duration * settings.time_scale if duration else None,
                stuck_reason=stuck.reason if stuck is not None else None,
                fail_to_start_reason=self._pull_error(pull_failure) if pull_failure is not None else None,
                host_terminated_after=host_fault.after_seconds if host_fault is not None else None,
                host_terminated_reason=(host_fault.reason or "") if host_fault is not None else "",
                exit_code_after_start=exit_fault.exit_code if exit_fault is not None else None,
                container_exited=CONTAINER_EXITED,
                failed_to_start=FAILED_TO_START,
                timed_out=TIMED_OUT,
            )
            self._status = SUBMITTED
        if self.runtime.events is not None:
            self.runtime.events.watch(self)

    @property
    def held(self) -> bool:
        """True for a hold-mode job (no thread, no process)."""
        return self._hold is not None

    def _advance(self) -> None:
        """Bring a held job's status up to the clock; a no-op for process-mode jobs.

        An array's parent brings its children up instead (never with its own lock held), since its
        status is theirs.
        """
        if self.array is not None:
            for child in list(self.array.children):
                child.catch_up()
            return
        plan = self._hold
        if plan is None or self.finished:
            return
        with self._lock:
            if self.finished:
                return
            now = time.time()
            if self._held_by_queue(now):
                return
            plan = self._hold  # moved on, if its queue was unblocked just now
            if plan.stuck_reason is not None:
                self._status_reason = plan.stuck_reason
            self._walk_held(plan.steps_passed(now))
            running_at = plan.running_at
            if running_at is not None and now >= running_at and self._started_ms is None:
                self._enter_running(int(running_at * 1000))
            end = plan.end
            if end is not None and now >= end.at:
                if not end.started:
                    self._open_attempt(container_reason=end.container_reason)
                self._finish(
                    end.status, end.reason, end.exit_code, end.container_reason, at_ms=int(end.at * 1000)
                )
                return
            status = plan.status_at(now)
            if comes_after(status, self._status):
                self._status = status

    def _walk_held(self, passed: tuple[str, ...]) -> None:
        """Take a held job through the statuses of ``passed`` it has not been in yet, in order, each
        publishing its event (call with the lock held)."""
        assert self._hold is not None, "only a held job follows a plan"
        for step in passed[passed.index(self._status) + 1 :] if self._status in passed else ():
            if step == RUNNABLE:
                self._runnable_ms = int(self._hold.runnable_from * 1000)
            self._status = step

    def _held_by_queue(self, now: float) -> bool:
        """Keep a held job in RUNNABLE while its queue is blocked (call with the lock held); True while so.

        The job is held from when it reached RUNNABLE or the block began, whichever came later, if it had
        not left RUNNABLE by then (a job read late is held from that moment too). Its plan stands still
        meanwhile: once unblocked, the plan goes on as much later as the job was held, so the job spends
        the rest of its RUNNABLE step and each later one as planned.
        """
        plan = self._hold
        assert plan is not None, "only a held job follows a plan"
        block = self.runtime.faults.queue_block(self.job_queue.name)
        if self._blocked_at is None:
            if block is None:
                return False
            at = max(block.since, plan.runnable_from)
            if at > now or at > plan.runnable_until or self._status not in STEPS_TO_RUNNABLE:
                return False
            self._blocked_at = at
            self._walk_held(STEPS_TO_RUNNABLE[:-1])
            self._blocked_reason = self._status_reason = block.reason
            self._walk_held(STEPS_TO_RUNNABLE)  # the RUNNABLE event shows the reason already
            self._announce_blocked()
        elif block is None:
            self._hold = plan.shifted(now - self._blocked_at)
            self._blocked_at = None
            self._show_block(None)
            if self.runtime.events is not None:
                self.runtime.events.watch(self)  # its plan changes again from now on
            return False
        self._show_block(block.reason)
        return True

    def follow_queue_block(self) -> None:
        """Catch the job up with its queue's block as it now stands: called as soon as that block changes,
        so a waiting job shows it (and its Queue Blocked event goes out) at once, not at its next read."""
        if self._hold is not None:
            self._advance()
            return
        with self._lock:
            if self._status == RUNNABLE:
                block = self.runtime.faults.queue_block(self.job_queue.name)
                self._show_block(block.reason if block is not None else None)

    def _show_block(self, reason: str | None) -> None:
        """Show the reason of its queue's block on a RUNNABLE job, publishing a Queue Blocked event when it
        is new; None lifts the block, leaving a ``stuck_in_runnable`` reason if any (lock held)."""
        if reason == self._blocked_reason:
            return
        self._blocked_reason = reason
        self._status_reason = reason or self._stuck_reason_now()
        if reason is not None:
            self._announce_blocked()

    def _announce_blocked(self) -> None:
        """Publish the "Batch Job Queue Blocked" event of the job as it now is (call with the lock held)."""
        events = self.runtime.events
        if events is not None and events.enabled:
            events.publish_blocked(self._detail())

    def _stuck_reason_now(self) -> str | None:
        """The reason of a ``stuck_in_runnable`` fault still holding the job, if any."""
        if self._hold is not None:
            return self._hold.stuck_reason
        return None if self._released.is_set() else self._stuck_reason

    def waiting_since(self) -> int | None:
        """When the RUNNABLE job took its place at the back of its queue (epoch ms); None when the job
        is not RUNNABLE."""
        self._advance()
        with self._lock:
            return self._runnable_ms if self._status == RUNNABLE else None

    def catch_up(self) -> None:
        """Bring a held job's status up to the clock now, not at the next read."""
        self._advance()

    def next_change(self, after: float) -> float | None:
        """When a held job's status next changes on its own, later than ``after`` (wall clock).

        None for a process-mode job, a finished one, or one that stays where it is until terminated (or,
        held by its blocked queue, until unblocked).
        """
        plan = self._hold
        if plan is None or self.finished or self._blocked_at is not None:
            return None
        return plan.next_change(after)

    def exit_now(self, exit_code: int = 0) -> int | None:
        """End a held RUNNING job now, as if its container exited with ``exit_code``; its stoppedAt.

        Load tests use it to make chosen jobs end at a known moment (SUCCEEDED for 0, else FAILED).
        None when the job is not held or not RUNNING (not started yet, or already ended).
        """
        if self._hold is None:
            return None
        with self._lock:
            self._advance()
            if self._status != RUNNING:
                return None
            self._finish(SUCCEEDED if exit_code == 0 else FAILED, CONTAINER_EXITED, exit_code)
            return self._stopped_ms

    def _enter_running(self, started_ms: int) -> None:
        props = self.job_definition.container_properties or {}
        options = (props.get("logConfiguration") or {}).get("options", {})
        group = options.get("awslogs-group", DEFAULT_LOG_GROUP)
        stream = self._attempt_stream(options)
        self._log_backend.ensure_log_group(group)
        self._log_backend.ensure_log_stream(group, stream)
        self._log_stream = stream
        self._started_ms = started_ms
        self._open_attempt(stream=stream, started_ms=started_ms)
        self.runtime.history.record("attempt_started", jobId=self.job_id, attempt=self._attempt_number)

    @property
    def status(self) -> str | None:
        self._advance()
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        with self._lock:
            self._status = value

    @property
    def pid(self) -> int | None:
        """The process id of the running container command, None when no process runs."""
        return self._pid

    @property
    def finished(self) -> bool:
        return self._status in FINAL_STATUSES

    @property
    def stuck(self) -> bool:
        """True while the job waits in RUNNABLE because of a ``stuck_in_runnable`` fault."""
        return self._status == RUNNABLE and self._stuck_reason is not None and not self._released.is_set()

    def vanish_now(self) -> bool:
        """Make a finished job disappear from DescribeJobs and ListJobs now; False when it is not final."""
        self._advance()
        with self._lock:
            if not self.finished:
                return False
            self.vanished = True
            return True

    def release(self) -> None:
        """Let a job held by ``stuck_in_runnable`` go on to STARTING, as if capacity appeared."""
        self._released.set()

    def terminate(self, reason: str) -> None:
        if self.array is not None:
            return self.stop_children(reason, started_too=True)
        self.runtime.history.record("terminate", jobId=self.job_id, reason=reason, status=self.status)
        if self._hold is not None:
            return self._terminate_held(reason)
        with self._lock:
            if self.finished or self.stop:
                return
            self.stop = True
            self._termination_reason = reason
        self._wakeup.set()

    def stop_children(self, reason: str, started_too: bool) -> None:
        """TerminateJob (``started_too``) or CancelJob on an array's parent: applied to each child.

        AWS: cancelling a parent "attempts to cancel all child jobs", so CancelJob stops only the children
        that have not reached STARTING, as it would each of them. The parent ends when its children
        have, with the latest such ``reason`` as its statusReason if it FAILED (AWS: DescribeJobs
        returns the reason given).
        """
        assert self.array is not None, "only an array's parent has children"
        self.runtime.history.record("terminate", jobId=self.job_id, reason=reason, status=self.status)
        with self._lock:
            self._termination_reason = reason
        for child in list(self.array.children):
            if started_too or child.status in NOT_STARTED:
                child.terminate(reason)

    def _terminate_held(self, reason: str) -> None:
        """A held job stops at once: a RUNNING one as if its container died of SIGTERM (143)."""
        with self._lock:
            self._advance()
            if self.finished or self.stop:
                return
            self.stop = True
            self._termination_reason = reason
            self._finish(FAILED, reason, 143 if self._status == RUNNING else None)

    def run(self) -> None:
        try:
            self._lifecycle()
        except Exception as err:
            logger.exception("Local Batch job %s (%s) crashed", self.job_id, self.job_name)
            if self._runner is not None:
                self._runner.kill()
            self._finish(FAILED, f"Local Batch internal error: {err}")

    def describe_short(self) -> dict[str, Any]:
        self._advance()
        with self._lock:
            summary = self._common_fields()
            container = {
                k: v
                for k, v in (("exitCode", self._exit_code), ("reason", self._container_reason))
                if v is not None
            }
            if container:
                summary["container"] = container
            array_properties = self._array_properties(summary=True)
            if array_properties:
                summary["arrayProperties"] = array_properties
            return summary

    def describe(self) -> dict[str, Any]:
        self._advance()
        return self._detail()

    def _detail(self) -> dict[str, Any]:
        """The DescribeJobs record as of now, without moving a held job along."""
        with self._lock:
            detail = self._common_fields()
            detail.update(
                jobQueue=self.job_queue.arn,
                dependsOn=self.depends_on or [],
                parameters=dict(self.parameters),
                tags=self.backend.list_tags_for_resource(self.arn),
                container=self._container_detail(),
                attempts=copy.deepcopy(self._attempts),
                platformCapabilities=self.job_definition.platform_capabilities or [],
                propagateTags=bool(self.job_definition.propagate_tags),
            )
            timeout = self.timeout or self.job_definition.timeout
            if timeout:
                detail["timeout"] = timeout
            if self._retry_strategy:
                detail["retryStrategy"] = copy.deepcopy(self._retry_strategy)
            array_properties = self._array_properties(summary=False)
            if array_properties:
                detail["arrayProperties"] = array_properties
            return detail

    def _array_properties(self, summary: bool) -> dict[str, Any] | None:
        """``arrayProperties`` as AWS shows it (call with the lock held): a parent's, or a child's index."""
        if self.array is not None:
            return self.array.properties(summary)
        return None if self.array_index is None else {"index": self.array_index}

    def command(self) -> list[str]:
        """The argv the container runs: the submitted override, else the job definition's."""
        props = self.job_definition.container_properties or {}
        command = self.container_overrides.get("command") or props.get("command") or []
        return self._add_parameters_to_command(list(command)) if command else []

    def environment(self) -> list[dict[str, str]]:
        """The container environment as DescribeJobs shows it: job definition, then overrides."""
        props = self.job_definition.container_properties or {}
        return _merge_named(
            props.get("environment", []), self.container_overrides.get("environment", []), "name"
        )

    def _lifecycle(self) -> None:
        if self._pause():
            return self._cancel()
        self._set_status(PENDING)
        if self.depends_on and not self._dependencies_succeeded():
            return
        if self._pause():
            return self._cancel()
        with self._lock:
            if self.finished:
                return
            self._enter_runnable()
        while True:
            end = self._run_attempt()
            if end is None or not self._retried(end):
                return

    def _enter_runnable(self) -> None:
        """Move to RUNNABLE for the next attempt (call with the lock held).

        A ``stuck_in_runnable`` fault is claimed, and the block of the job's queue read, and the reason
        set, in the same step as the status: the RUNNABLE event and every DescribeJobs then show why the
        job waits, as AWS does. Setting the reason afterwards left a window in which observers saw a
        RUNNABLE job without it. A queue's block shows before a stuck fault's reason.
        """
        faults = self.runtime.faults
        stuck = faults.claim_stuck_in_runnable(self._fault_subject)
        self._stuck_reason = stuck.reason if stuck is not None else None
        if stuck is not None:
            self._released.clear()
        block = faults.queue_block(self.job_queue.name)
        self._blocked_reason = block.reason if block is not None else None
        self._status_reason = self._blocked_reason or self._stuck_reason
        self._runnable_ms = _now_ms()
        self._status = RUNNABLE
        if block is not None:
            self._announce_blocked()

    def _run_attempt(self) -> AttemptEnd | None:
        """One attempt, from RUNNABLE to its end; None when the job was stopped before it started."""
        faults = self.runtime.faults
        if self._stuck_reason is not None:
            while not self._released.is_set():
                if self._sleep(POLL_SECONDS):
                    self._cancel()
                    return None
            with self._lock:
                self._status_reason = self._blocked_reason
        if self._leave_runnable():
            self._cancel()
            return None
        pull_failure = faults.claim_fail_before_start(self._fault_subject)
        if self._pause():
            self._cancel()
            return None
        if pull_failure is not None:
            return self._failed_to_start(self._pull_error(pull_failure))
        command = self.command()
        if not command:
            return self._failed_to_start(
                "CannotStartContainerError: the local Batch runs commands, not images; give the job "
                "definition a command or submit with containerOverrides.command"
            )
        return self._run_container(command)

    def _leave_runnable(self) -> bool:
        """Spend ``step_delay`` in RUNNABLE, then go on to STARTING as soon as the job's queue is not
        blocked; True when the job was stopped first."""
        if self._pause():
            return True
        while True:
            with self._lock:
                if self._blocked_reason is None:
                    if not self.finished:
                        self._status = STARTING
                    return False
            if self._sleep(POLL_SECONDS):
                return True

    def _retried(self, end: AttemptEnd) -> bool:
        """Send the job back to RUNNABLE for another attempt if Batch would; else end the job."""
        with self._lock:
            forced = False
            current = self._current
            if self._lost_at_end is not None and not self.stop and current and "startedAt" in current:
                # retry_after_start: the host is lost as the first attempt's container ends
                self._lost_at_end = None
                self._extra_attempts += 1
                forced = True
                end = AttemptEnd(FAILED, HOST_TERMINATED_REASON, container_reason=HOST_TERMINATED_REASON)
            if not self.stop and end.status == FAILED and (forced or self._may_retry(end)):
                self._begin_retry(end)
                return True
        self._finish(end.status, end.reason, end.exit_code, end.container_reason)
        return False

    def _may_retry(self, end: AttemptEnd) -> bool:
        if (
            end.timed_out
        ):  # AWS: "If a job is terminated for exceeding the timeout duration, it isn't retried"
            return False
        attempts = int(self._retry_strategy.get("attempts") or 1) + self._extra_attempts
        return self._attempt_number < attempts and retried_by_strategy(self._retry_strategy, end)

    def _begin_retry(self, end: AttemptEnd) -> None:
        """Close the failed attempt and wait in RUNNABLE for the next one (call with the lock held)."""
        self._close_attempt(end.reason, end.exit_code, end.container_reason, _now_ms())
        self.runtime.history.record(
            "retry",
            jobId=self.job_id,
            attempt=self._attempt_number,
            statusReason=end.reason,
            exitCode=end.exit_code,
        )
        logger.info(
            "Job %s (%s) attempt %s failed (%s); Batch retries it",
            self.job_id,
            self.job_name,
            self._attempt_number,
            end.reason,
        )
        self._attempt_number += 1
        self._started_ms = self._stopped_ms = None
        self._status_reason = self._exit_code = self._container_reason = self._log_stream = None
        self._latest_task_arn = None
        self._pid = None
        self._enter_runnable()

    def _run_container(self, command: list[str]) -> AttemptEnd | None:
        workload = inline_workload(command) if self._mode == INLINE else None
        try:
            started = self._start_container(command, workload)
        except OSError as err:
            return self._failed_to_start(
                f"CannotStartContainerError: failed to start {command[0]!r}: {err.strerror or err}"
            )
        if started is None:
            self._cancel()
            return None
        container, sink, exit_fault = started
        if isinstance(container, InlineContainer) and workload is not None:
            exit_code = run_inline(
                self.runtime,
                self.job_id,
                self._attempt_number,
                workload,
                sink,
                stopped=lambda: self.stop,
                array_index=self.array_index,
            )
            sink.flush()
            container.begin(exit_code, self.runtime.settings.inline_run_seconds if exit_code == 0 else 0.0)
        return self._supervise(container, sink, exit_fault)

    def _start_container(
        self, command: list[str], workload: InlineWorkload | None
    ) -> tuple[ProcessRunner | InlineContainer, CloudWatchLogSink, JobFault | None] | None:
        """Start the container and enter RUNNING atomically, so a terminate never races the start.

        None when the job was stopped first; OSError when the command cannot be started.
        """
        props = self.job_definition.container_properties or {}
        options = (props.get("logConfiguration") or {}).get("options", {})
        group = options.get("awslogs-group", DEFAULT_LOG_GROUP)
        stream = self._attempt_stream(options)
        with self._lock:
            if self.stop:
                return None
            sink = CloudWatchLogSink(self._log_backend, group, stream)
            container: ProcessRunner | InlineContainer = (
                InlineContainer()
                if workload is not None
                else ProcessRunner(
                    command,
                    self._process_env(),
                    sink,
                    self.runtime.warm_starts if self.runtime.settings.warm_start else None,
                )
            )
            self._runner = container
            self._pid = container.pid
            self._log_stream = stream
            self._started_ms = _now_ms()
            self._open_attempt(stream=stream, started_ms=self._started_ms)
            self._status = RUNNING
            attempt = self._attempt_number
            self.runtime.history.record("attempt_started", jobId=self.job_id, attempt=attempt)
        faults = self.runtime.faults
        if attempt == 1:
            self._lost_at_end = faults.claim_retry_after_start(self._fault_subject)
        exit_fault = faults.claim_fail_after_start(self._fault_subject)
        if isinstance(container, ProcessRunner):
            how = "a fork of a warm interpreter" if container.warm else "a new process"
            logger.info(
                "Job %s (%s) runs as pid %s, %s: %s", self.job_id, self.job_name, container.pid, how, command
            )
        return container, sink, exit_fault

    def _attempt_stream(self, options: dict[str, Any]) -> str:
        """``<prefix>/default/<job id>``; later attempts get their own stream, as each ECS task does.

        An array child's ``:`` becomes ``-``: CloudWatch refuses ``:`` in a stream name.
        """
        name = self.job_id.replace(":", "-")
        stream = f"{options.get('awslogs-stream-prefix', self.job_definition.name)}/default/{name}"
        return stream if self._attempt_number == 1 else f"{stream}-{self._attempt_number}"

    def _supervise(
        self, runner: ProcessRunner | InlineContainer, sink: CloudWatchLogSink, exit_fault: JobFault | None
    ) -> AttemptEnd:
        """Ship logs while the container runs; end the attempt on exit, terminate, timeout or a host fault."""
        settings = self.runtime.settings
        host_fault = self.runtime.faults.claim_host_terminated(self._fault_subject)
        started = time.monotonic()
        duration = self._get_attempt_duration()
        deadline = started + duration * settings.time_scale if duration else None
        host_dies_at = started + host_fault.after_seconds if host_fault else None
        next_flush = started + settings.log_flush_interval
        while True:
            now = time.monotonic()
            if runner.poll() is not None:
                exit_code = runner.finish()
                if exit_code == 0 and exit_fault is not None:
                    exit_code = exit_fault.exit_code
                sink.flush()
                return AttemptEnd(SUCCEEDED if exit_code == 0 else FAILED, CONTAINER_EXITED, exit_code)
            if self.stop:
                exit_code = runner.stop(settings.kill_grace_seconds)
                sink.flush()
                return AttemptEnd(FAILED, self._termination_reason or "Job terminated", exit_code)
            if deadline is not None and now >= deadline:
                exit_code = runner.stop(settings.kill_grace_seconds)
                sink.flush()
                return AttemptEnd(FAILED, TIMED_OUT, exit_code, timed_out=True)
            if host_fault is not None and host_dies_at is not None and now >= host_dies_at:
                runner.kill()
                sink.flush()
                return AttemptEnd(FAILED, host_fault.reason, container_reason=host_fault.reason)
            if now >= next_flush:
                sink.flush()
                next_flush = now + settings.log_flush_interval
            self._wakeup.wait(POLL_SECONDS)

    @property
    def image(self) -> str:
        """The image the job's definition names (the local Batch runs commands, never images)."""
        return (self.job_definition.container_properties or {}).get("image") or ""

    def _process_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self._aws_env(env))
        env.update({item["name"]: str(item["value"]) for item in self.environment()})
        compute_envs = getattr(self.job_queue, "environments", None) or []
        mount_points = (self.job_definition.container_properties or {}).get("mountPoints") or []
        env.update(
            AWS_BATCH_JOB_ID=self.job_id,
            AWS_BATCH_JOB_ATTEMPT=str(self._attempt_number),
            AWS_BATCH_JQ_NAME=self.job_queue.name,
            AWS_BATCH_CE_NAME=compute_envs[0].name if compute_envs else "",
            LOCAL_BATCH_IMAGE=self.image,
            LOCAL_BATCH_JOB_DEFINITION=self.job_definition.arn,
            LOCAL_BATCH_MOUNT_POINTS=",".join(str(mount.get("containerPath")) for mount in mount_points),
        )
        # ECS injects its task's metadata endpoint into the container: not in DescribeJobs' environment
        endpoint = self.runtime.environment["endpoint_url"]
        env[TASK_METADATA_VARIABLE] = metadata_uri(endpoint, self._begin_task())
        if self._array_parent is not None and self._array_parent.array is not None:
            env[ARRAY_INDEX_VARIABLE] = str(self.array_index)
            env[SIZE_VARIABLE] = str(self._array_parent.array.size)
        return env

    def _aws_env(self, inherited: dict[str, str]) -> dict[str, str]:
        """What a Batch container gets from AWS: its region and (here, fake) job role credentials.

        The AWS SDK in the job is pointed at this server too, so a job can use S3 and the other
        services moto serves on the same endpoint, as a real job uses its own region's. Settings the
        server process already has (tests point it at itself) are left as they are.
        """
        ready = self.runtime.environment
        if not ready or "AWS_ENDPOINT_URL" in inherited:
            return {}
        return {
            "AWS_ENDPOINT_URL": ready["endpoint_url"],
            "AWS_REGION": ready["region"],
            "AWS_DEFAULT_REGION": ready["region"],
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
        }

    def _dependencies_succeeded(self) -> bool:
        wanted = [dependency["jobId"] for dependency in self.depends_on or []]
        while True:
            statuses = [getattr(self.backend.get_job_by_id(job_id), "status", None) for job_id in wanted]
            if any(status == FAILED for status in statuses):
                self._finish(FAILED, DEPENDENCY_FAILED)
                return False
            if all(status == SUCCEEDED for status in statuses):
                return True
            if self._sleep(POLL_SECONDS):
                self._cancel()
                return False

    def _pull_error(self, fault: JobFault) -> str:
        if fault.reason:
            return fault.reason
        image = (self.job_definition.container_properties or {}).get("image", "unknown")
        return permanent_pull_error(image) if fault.permanent else transient_pull_error(image)

    def _failed_to_start(self, container_reason: str) -> AttemptEnd:
        with self._lock:
            self._open_attempt(container_reason=container_reason)
        return AttemptEnd(FAILED, FAILED_TO_START, container_reason=container_reason)

    def _open_attempt(
        self, stream: str | None = None, started_ms: int | None = None, container_reason: str | None = None
    ) -> None:
        """Begin the record of the attempt under way (call with the lock held)."""
        task = self._begin_task()
        container: dict[str, Any] = {"taskArn": task.arn}
        if stream is not None:
            container["logStreamName"] = stream
        if container_reason is not None:
            container["reason"] = container_reason
        container["networkInterfaces"] = []
        self._current = {"container": container}
        if started_ms is not None:
            self._current["startedAt"] = started_ms

    def _close_attempt(
        self, status_reason: str | None, exit_code: int | None, container_reason: str | None, stopped_ms: int
    ) -> None:
        """Move the attempt under way, if any, to the finished ones (call with the lock held); its task's
        metadata endpoint stops answering."""
        if self._task is not None:
            self.runtime.ecs_tasks.remove(self._task)
            self._task = None
        attempt, self._current = self._current, None
        if attempt is None:
            return
        container = attempt["container"]
        if exit_code is not None:
            container["exitCode"] = exit_code
        if container_reason is not None:
            container["reason"] = container_reason
        attempt["stoppedAt"] = stopped_ms
        attempt["statusReason"] = status_reason
        self._attempts.append(attempt)

    def _cancel(self) -> None:
        self._finish(FAILED, self._termination_reason or "Job terminated")

    def _finish(
        self,
        status: str,
        status_reason: str | None,
        exit_code: int | None = None,
        container_reason: str | None = None,
        at_ms: int | None = None,
    ) -> None:
        with self._lock:
            if self.finished:
                return
            self._stopped_ms = at_ms if at_ms is not None else _now_ms()
            self._status_reason = status_reason
            self._exit_code = exit_code
            self._container_reason = container_reason
            self._pid = None
            self._close_attempt(status_reason, exit_code, container_reason, self._stopped_ms)
            self.exit_code = exit_code
            self.job_stopped = True
            self.job_stopped_reason = status_reason
            self._status = status
            self.runtime.history.record(
                "job_final", jobId=self.job_id, status=status, attempts=len(self._attempts)
            )
            if self.runtime.faults.claim_vanish(self._fault_subject) is not None:
                self.vanished = True
        logger.log(
            logging.DEBUG if self._hold is not None else logging.INFO,
            "Job %s (%s) %s: %s (exit code %s)",
            self.job_id,
            self.job_name,
            status,
            status_reason,
            exit_code,
        )

    def _set_status(self, status: str) -> None:
        with self._lock:
            if not self.finished:
                self._status = status

    def _pause(self) -> bool:
        return self._sleep(self.runtime.settings.step_delay)

    def _sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True as soon as the job is asked to stop."""
        deadline = time.monotonic() + seconds
        while not self.stop:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._wakeup.wait(min(remaining, POLL_SECONDS))
        return True

    def _begin_task(self) -> EcsTask:
        """The ECS task of the attempt under way, made as the attempt reaches STARTING (lock held).

        As AWS: "Each container attempt receives a task ARN when they reach the STARTING status". Made
        by the status change itself, so the STARTING event carries it already; a held plan without
        steps (``step_delay`` 0) skips STARTING, and its attempt gets its task as it opens.
        """
        if self._task is None:
            self._task = new_task(
                self.job_definition._region,
                self.backend.account_id,
                self._cluster_name(),
                self.job_definition.name,
                self.job_definition.revision,
                self.image,
            )
            self._latest_task_arn = self._task.arn
            self.runtime.ecs_tasks.add(self._task)
        return self._task

    def _cluster_name(self) -> str:
        """The ECS cluster of the job's compute environment, as on AWS, where a managed compute
        environment's tasks run in its own cluster (DescribeComputeEnvironments' ``ecsClusterArn``,
        which moto creates too); ``local-batch`` when moto made none (an unmanaged one)."""
        compute_envs = getattr(self.job_queue, "environments", None) or []
        return (compute_envs[0].ecs_name if compute_envs else "") or DEFAULT_CLUSTER

    def _common_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "jobArn": self.arn,
            "jobId": self.job_id,
            "jobName": self.job_name,
            "jobDefinition": self.job_definition.arn,
            "status": self._status,
            "createdAt": self._created_ms,
        }
        for key, value in (
            ("statusReason", self._status_reason),
            ("startedAt", self._started_ms),
            ("stoppedAt", self._stopped_ms),
        ):
            if value is not None:
                fields[key] = value
        return fields

    def _container_detail(self) -> dict[str, Any]:
        props = self.job_definition.container_properties or {}
        overrides = self.container_overrides
        detail: dict[str, Any] = {
            "image": props.get("image"),
            "command": self.command(),
            "environment": self.environment(),
            "resourceRequirements": _merge_named(
                props.get("resourceRequirements", []), overrides.get("resourceRequirements", []), "type"
            ),
            "volumes": props.get("volumes", []),
            "mountPoints": props.get("mountPoints", []),
            "ulimits": props.get("ulimits", []),
            "secrets": props.get("secrets", []),
            "readonlyRootFilesystem": props.get("readonlyRootFilesystem", False),
            "networkInterfaces": [],
        }
        for key in (
            "executionRoleArn",
            "jobRoleArn",
            "logConfiguration",
            "networkConfiguration",
            "fargatePlatformConfiguration",
            "runtimePlatform",
            "ephemeralStorage",
            "user",
        ):
            if key in props:
                detail[key] = copy.deepcopy(props[key])
        if self._latest_task_arn is not None:
            detail["taskArn"] = self._latest_task_arn
        for key, value in (
            ("logStreamName", self._log_stream),
            ("exitCode", self._exit_code),
            ("reason", self._container_reason),
        ):
            if value is not None:
                detail[key] = value
        return detail
