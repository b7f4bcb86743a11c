"""The soak's stand-in for Airflow's scheduler: a small model of task instance states, talking to the
executor only through the scheduler's interface.

A task instance is SCHEDULED, then QUEUED (``queue_workload``), RUNNING once the local Batch records
its workload run (when the task would call the execution API's ``/run``), and SUCCESS or FAILED from
the executor's events. A failed try with retries left is retried as try_number + 1. The
``running`` event's job id is kept as the task instance's ``external_executor_id``.

**Revokes, and why they never race a job that is about to start.** Airflow revokes (``revoke_task``)
a task that stayed QUEUED past ``[scheduler] task_queued_timeout`` and requeues it with the same try
number, at most twice; the third time the scheduler fails it itself. It revokes only tasks that never
started. The soak does the same, at the queued timeout and also earlier, as planned: right after
queueing (before submit, or while SubmitJob is in flight), or while the job waits for capacity. So
that a revoke can never race a job that is about to start, a try is revoked only while no job of its
name can start (see :meth:`BatchView.cannot_start`): every job of the name (the job name is
deterministic per try) is final or held in RUNNABLE by a ``stuck_in_runnable`` fault, and any job
still to come would be held too. For that, each planned revoke plants one ``stuck_in_runnable``
(``count=1``) aimed at the try's job name when the try is first queued, so the revoked queueing's job,
if its SubmitJob lands late, stays stuck until the executor terminates it. Stuck jobs of the current
queueing that are not to be revoked are released after a while (capacity appears), some only after
their token passed half its life, so it is refreshed.

**Adoption.** When the executor is killed, a new one gets ``try_adopt_task_instances`` with every
task instance in QUEUED or RUNNING (with its ``external_executor_id``); those it hands back are reset
and scheduled again with the next try number, as Airflow's reset does.
"""

from __future__ import annotations

import random
import secrets
import time
import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from airflow.models.taskinstancekey import TaskInstanceKey

from airflow_batch_executor.requests.naming import WorkloadIdentity, job_name
from batch_devtools.soak.batch_view import BatchView
from batch_devtools.soak.executors import ExecutorHandle
from batch_devtools.soak.options import SoakOptions
from batch_devtools.soak.plan import (
    DAG_ID,
    FAIL_EXIT_CODE,
    MAX_SUBMIT_JOB_ATTEMPTS,
    Revoke,
    SoakPlan,
    TaskPlan,
    TryPlan,
)
from batch_devtools.soak.records import Queueing, TryKey, TryRecord

SCHEDULED, QUEUED, RUNNING, SUCCESS, FAILED = "scheduled", "queued", "running", "success", "failed"
STUCK_QUEUED_REQUEUES = 2
"""``[scheduler] num_stuck_in_queued_retries``: requeues after a revoke before the scheduler fails it."""
RETRY_DELAY = 0.2
SHORT_HOLD = (0.3, 1.2)
"""Seconds a job held in RUNNABLE by a fault not meant for it waits before capacity appears."""
REQUEUE_DELAY = (0.3, 1.5)


@dataclass
class ModelTI:
    plan: TaskPlan
    run_id: str
    state: str = SCHEDULED
    try_number: int = 1
    ready_at: float = 0.0
    ti_id: uuid.UUID = field(default_factory=uuid.uuid4)
    external_executor_id: str | None = None
    id_queueing: Queueing | None = None
    """The queueing during which the executor reported ``external_executor_id``."""
    planned_revokes_done: int = 0
    stuck_count: int = 0
    hold_used: bool = False
    stuck_since: dict[str, float] = field(default_factory=dict)
    holds: dict[str, float] = field(default_factory=dict)
    current: TryRecord | None = None

    @property
    def identity(self) -> tuple[str, str, str, int]:
        return (DAG_ID, self.plan.task_id, self.run_id, self.plan.map_index)

    @property
    def key(self) -> TaskInstanceKey:
        return TaskInstanceKey(DAG_ID, self.plan.task_id, self.run_id, self.try_number, self.plan.map_index)

    def namespace(self) -> SimpleNamespace:
        """The task instance as the executor's ``revoke_task`` and ``try_adopt_task_instances`` see it."""
        return SimpleNamespace(
            key=self.key,
            id=self.ti_id,
            dag_id=DAG_ID,
            task_id=self.plan.task_id,
            run_id=self.run_id,
            map_index=self.plan.map_index,
            try_number=self.try_number,
            queue="default",
            executor_config=self.plan.executor_config,
            external_executor_id=self.external_executor_id,
        )


class SchedulerModel:
    def __init__(self, plan: SoakPlan, options: SoakOptions, view: BatchView) -> None:
        self.plan = plan
        self.options = options
        self.view = view
        self.faults = view.lb.faults
        self.tis = [ModelTI(task, plan.run_id) for task in plan.tasks]
        self._by_identity = {ti.identity: ti for ti in self.tis}
        self.tries: dict[TryKey, TryRecord] = {}
        self._never_queued = list(reversed(self.tis))
        self._waiting: list[ModelTI] = []
        self.active: dict[int, ModelTI] = {}
        """The task instances QUEUED or RUNNING, by ``id()``."""
        self.finished = 0
        self.draining = False
        self._random = random.Random(f"{plan.seed}:scheduler")
        self.token_generator: Any = None
        self.tokens: list[str] = []
        self.planted: dict[str, int] = {}
        self.releases = 0
        self.stray_events: list[tuple[TryKey, str]] = []

    @property
    def progress(self) -> float:
        """The share of task instances finished: run-wide faults are placed on it."""
        return self.finished / len(self.tis)

    @property
    def all_queued(self) -> bool:
        return not self._never_queued

    @property
    def done(self) -> bool:
        return not self._never_queued and not self._waiting and not self.active

    # events and history ------------------------------------------------------------------------

    def on_events(self, buffer: list[tuple[TryKey, str, str]]) -> None:
        """The scheduler's reading of the event buffer."""
        for key, state, info in buffer:
            ti = self._by_identity.get(key[:4])
            if ti is None or key.try_number != ti.try_number or ti.state not in (QUEUED, RUNNING):
                self.stray_events.append((key, state))
                continue
            if state == "running":
                ti.external_executor_id = info
                ti.id_queueing = ti.current.queueings[-1] if ti.current else None
            elif state == SUCCESS:
                self._end(ti, SUCCESS)
            elif state == FAILED:
                retry = ti.try_number <= ti.plan.retries  # Airflow: eligible to retry, up_for_retry
                self._end(ti, FAILED, final=not retry)
                if retry:
                    self._next_try(ti, RETRY_DELAY)

    def on_history(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            if entry["event"] != "workload_run" or entry.get("dag_id") is None:
                continue
            key = TryKey.of(entry)
            ti = self._by_identity.get(key[:4])
            if ti is not None and ti.try_number == key.try_number and ti.state == QUEUED:
                ti.state = RUNNING
                if ti.current is not None:
                    ti.current.ran_at = entry["at"]

    def _end(self, ti: ModelTI, state: str, final: bool = True) -> None:
        ti.state = state
        self.active.pop(id(ti), None)
        self.finished += final
        if ti.current is not None:
            ti.current.end, ti.current.ended_at = state, time.time()

    def _next_try(self, ti: ModelTI, delay: float) -> None:
        ti.try_number += 1
        ti.ti_id = uuid.uuid4()
        ti.external_executor_id = ti.id_queueing = None
        ti.planned_revokes_done = ti.stuck_count = 0
        ti.hold_used = False
        self._schedule(ti, delay)

    def _schedule(self, ti: ModelTI, delay: float) -> None:
        ti.state = SCHEDULED
        ti.ready_at = time.monotonic() + delay
        self.active.pop(id(ti), None)
        self._waiting.append(ti)

    # queueing ------------------------------------------------------------------------------------

    def queue_ready(self, executor: ExecutorHandle) -> None:
        """Queue what is due, as many as ``parallelism`` leaves room for: retries and requeues first."""
        room = min(self.options.parallelism - len(self.active), executor.slots_available)
        now = time.monotonic()
        due = [ti for ti in self._waiting if ti.ready_at <= now][:room]
        for ti in due:
            self._waiting.remove(ti)
            self._queue(ti, executor)
        room -= len(due)
        while room > 0 and self._never_queued:
            self._queue(self._never_queued.pop(), executor)
            room -= 1

    def _queue(self, ti: ModelTI, executor: ExecutorHandle) -> None:
        key = TryKey(DAG_ID, ti.plan.task_id, ti.run_id, ti.plan.map_index, ti.try_number)
        record = self.tries.get(key)
        if record is None:
            name = job_name(
                WorkloadIdentity(DAG_ID, ti.plan.task_id, ti.run_id, ti.plan.map_index, ti.try_number)
            )
            record = self.tries[key] = TryRecord(key, name)
            if not self.draining:
                self._plant(name, ti.plan.try_plan(ti.try_number))
        record.queueings.append(Queueing(time.time(), executor.generation))
        ti.current = record
        ti.state = QUEUED
        ti.stuck_since.clear()
        ti.holds.clear()
        self.active[id(ti)] = ti
        executor.queue(self._workload(ti))

    def _workload(self, ti: ModelTI) -> Any:
        from airflow.executors.workloads import BundleInfo, ExecuteTask, TaskInstance

        instance = TaskInstance(
            id=ti.ti_id,
            task_id=ti.plan.task_id,
            dag_id=DAG_ID,
            run_id=ti.run_id,
            try_number=ti.try_number,
            map_index=ti.plan.map_index,
            dag_version_id=uuid.UUID(int=1),
            queue="default",
            pool_slots=1,
            priority_weight=1,
            executor_config=ti.plan.executor_config,
        )
        token = self._token(str(ti.ti_id))
        self.tokens.append(token)
        return ExecuteTask(
            ti=instance,
            dag_rel_path="dags/soak.py",
            bundle_info=BundleInfo(name="dags-folder"),
            log_path=f"dag_id={DAG_ID}/run_id={ti.run_id}/task_id={ti.plan.task_id}/attempt={ti.try_number}.log",
            token=token,
        )

    def _token(self, subject: str) -> str:
        """A token signed as the scheduler signs it; an opaque secret where Airflow cannot sign."""
        from airflow.executors.workloads import ExecuteTask

        if self.token_generator is not None and hasattr(ExecuteTask, "generate_token"):
            return ExecuteTask.generate_token(subject, self.token_generator)
        return f"soak-{secrets.token_urlsafe(32)}"

    def _plant(self, name: str, plan: TryPlan) -> None:
        """Aim the try's planned job faults at its job name (each hits the first matching job)."""
        faults = self.faults
        if plan.stuck_faults:
            faults.stuck_in_runnable(pattern=name, count=plan.stuck_faults)
        for kind in plan.job_faults:
            if kind == "fail_before_start":
                faults.fail_before_start(pattern=name)
            elif kind == "fail_before_start_permanent":
                faults.fail_before_start(pattern=name, permanent=True)
            elif kind == "fail_before_start_every_attempt":
                faults.fail_before_start(pattern=name, count=MAX_SUBMIT_JOB_ATTEMPTS)
            elif kind == "fail_after_start":
                faults.fail_after_start(pattern=name, exit_code=FAIL_EXIT_CODE)
            elif kind == "host_terminated":
                faults.host_terminated(pattern=name, after_seconds=0.0)
            elif kind == "retry_after_start":
                faults.retry_after_start(pattern=name)
            elif kind == "vanish":
                faults.vanish(pattern=name)
            self.planted[kind] = self.planted.get(kind, 0) + 1
        for kind, status in plan.event_faults:
            options: dict[str, Any] = {}
            if kind == "delay_events":
                options["seconds"] = round(self._random.uniform(0.5, 3.0), 3)
            if kind == "duplicate_events":
                options["copies"] = self._random.choice((2, 3))
            getattr(faults, kind)(pattern=name, status=status, **options)
            self.planted[kind] = self.planted.get(kind, 0) + 1

    # revokes and capacity ----------------------------------------------------------------------

    def decide(self, executor: ExecutorHandle) -> None:
        """Planned revokes, the queued timeout, and capacity for jobs held in RUNNABLE."""
        now = time.monotonic()
        stuck = self.view.stuck()
        for ti in list(self.active.values()):
            record = ti.current
            assert record is not None
            queueing = record.queueings[-1]
            job = ti.external_executor_id if ti.id_queueing is queueing else None
            if job is not None and job in stuck:
                ti.stuck_since.setdefault(job, now)
            held_for = now - ti.stuck_since[job] if job in ti.stuck_since else None
            if ti.state == RUNNING:  # a Batch retry of a job that ran, waiting for capacity
                self._capacity(ti, job, held_for, planned_wait=False)
                continue
            queued_for = time.time() - queueing.queued_at
            planned = ti.plan.try_plan(ti.try_number).revokes
            pending = None
            if not self.draining and ti.planned_revokes_done < len(planned):
                pending = planned[ti.planned_revokes_done]
            if pending is not None and pending.stage != "timeout":
                due = self._revoke_due(pending, record.job_name, queueing, queued_for, held_for)
                if due and self.view.cannot_start(record.job_name, job):
                    ti.planned_revokes_done += 1
                    self._revoke(ti, executor, pending.stage, job)
                    continue
            elif queued_for >= self.options.queued_timeout:
                self._queued_timeout(ti, executor, record, job, planned=pending is not None)
                continue
            if pending is None:
                self._capacity(ti, job, held_for, planned_wait=True)

    def _revoke_due(
        self, pending: Revoke, name: str, queueing: Queueing, queued_for: float, held_for: float | None
    ) -> bool:
        """``early``: its delay after queueing; ``in_flight``: once the queueing's workload object is
        written and its SubmitJob not yet answered (else once its job waits, as ``stuck``); ``stuck``:
        its delay after its job began to wait for capacity."""
        if pending.stage == "early":
            return queued_for >= pending.delay
        if pending.stage == "in_flight" and self.view.written_not_submitted(name, queueing.queued_at):
            return True
        return held_for is not None and held_for >= pending.delay

    def _capacity(self, ti: ModelTI, job: str | None, held_for: float | None, *, planned_wait: bool) -> None:
        """Capacity appears for the job of a try that is not to be revoked, after it held a while
        (at once once faults stopped)."""
        if job is None or held_for is None:
            return
        if job not in ti.holds:
            ti.holds[job] = self._hold(ti) if planned_wait else self._random.uniform(*SHORT_HOLD)
        if self.draining or held_for >= ti.holds[job]:
            self.releases += len(self.view.lb.release_stuck_jobs([job]))

    def _queued_timeout(
        self, ti: ModelTI, executor: ExecutorHandle, record: TryRecord, job: str | None, *, planned: bool
    ) -> None:
        """Airflow's rule: revoke a task queued too long, once none of its jobs can start; with no job
        at all yet, first plant a fault that holds whatever job its SubmitJob may still make."""
        name = record.job_name
        if self.view.cannot_start(name, job):
            if planned:
                ti.planned_revokes_done += 1
            self._revoke(ti, executor, "timeout" if planned else "queued_timeout", job)
        elif not self.view.live_jobs(name) and not self.view.unclaimed_stuck_faults(name):
            self.faults.stuck_in_runnable(pattern=name, count=1)

    def _hold(self, ti: ModelTI) -> float:
        plan = ti.plan.try_plan(ti.try_number)
        if plan.stuck_hold is not None and not ti.hold_used:
            ti.hold_used = True
            return plan.stuck_hold
        return self._random.uniform(*SHORT_HOLD)

    def _revoke(self, ti: ModelTI, executor: ExecutorHandle, reason: str, job: str | None) -> None:
        executor.revoke(ti.namespace())
        assert ti.current is not None
        queueing = ti.current.queueings[-1]
        queueing.revoked_at, queueing.revoke_reason, queueing.job_at_revoke = time.time(), reason, job
        ti.stuck_count += 1
        if ti.stuck_count > STUCK_QUEUED_REQUEUES:
            ti.current.end, ti.current.ended_at = "failed_by_scheduler", time.time()
            ti.state = FAILED
            self.active.pop(id(ti), None)
            self.finished += 1
        else:
            self._schedule(ti, self._random.uniform(*REQUEUE_DELAY))

    def drain(self) -> None:
        """No more planned revokes; jobs of current queueings held in RUNNABLE start at once."""
        self.draining = True

    # adoption --------------------------------------------------------------------------------------

    def adopt(self, executor: ExecutorHandle) -> tuple[dict[TryKey, str | None], int]:
        """Offer every QUEUED or RUNNING task instance to a new executor; reset those it hands back.

        Returns the tries offered (with the job id the scheduler knew) and how many were handed back."""
        offered = list(self.active.values())
        keys = {ti.current.key: ti.external_executor_id for ti in offered if ti.current is not None}
        back = {ns.key for ns in executor.adopt([ti.namespace() for ti in offered])}
        for ti in offered:
            if ti.key in back:
                assert ti.current is not None
                ti.current.end, ti.current.ended_at = "handed_back", time.time()
                self._next_try(ti, RETRY_DELAY)
        return keys, len(back)
