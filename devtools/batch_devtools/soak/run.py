"""One soak run: the local Batch, one executor at a time, the model scheduler's loop, the run-wide
faults on their progress marks, then the end (faults off, every try finished, ``end()``) and the
evidence the invariants are checked on."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from airflow_batch_executor.status import receiver as status_events
from batch_devtools.local_batch import LocalBatch
from batch_devtools.soak.batch_view import BatchView
from batch_devtools.soak.client_faults import ClientFaults
from batch_devtools.soak.environment import point_executor_at
from batch_devtools.soak.evidence import Gathered, gather
from batch_devtools.soak.executors import ExecutorHandle
from batch_devtools.soak.log_capture import LineBuffer
from batch_devtools.soak.options import SoakOptions
from batch_devtools.soak.plan import Moment, SoakPlan
from batch_devtools.soak.prune import PruneResult, prune_everything
from batch_devtools.soak.records import ExecutorEvent, TryKey
from batch_devtools.soak.scheduler import SchedulerModel

TICK_SECONDS = 0.05
END_TIMEOUT_SECONDS = 120.0
RECEIVE_WAIT_SECONDS = 1
"""The status receiver's long poll (10 s in production): a killed executor's receiver then lets go of
the queue soon, and ``end()`` does not wait on it."""


@dataclass
class Kill:
    at: float
    generation: int
    lost_events: int
    adoption_delay: float
    adopted_at: float | None = None
    adoption_seconds: float | None = None
    offered: dict[TryKey, str | None] = field(default_factory=dict)
    """The tries offered to the new executor, with their ``external_executor_id``."""
    handed_back: int = 0


@dataclass
class RunRecord:
    """What happened during the run, besides the local Batch's history."""

    started_at: float
    events: list[ExecutorEvent] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    prunes: list[PruneResult] = field(default_factory=list)
    latency_windows: list[dict[str, Any]] = field(default_factory=list)
    malformed_planted: int = 0
    faults_at_drain: dict[str, Any] = field(default_factory=dict)
    drained_at: float | None = None
    all_finished_at: float | None = None
    settled_at: float | None = None
    ended_at: float | None = None
    timed_out: bool = False
    stalled: bool = False
    end_returned: bool = True
    cleaned_up: list[str] = field(default_factory=list)
    start_failures: list[str] = field(default_factory=list)


class SoakRun:
    def __init__(self, options: SoakOptions, plan: SoakPlan, logs: LineBuffer) -> None:
        self.options = options
        self.plan = plan
        self.logs = logs
        self.record = RunRecord(started_at=time.time())
        self.faults = ClientFaults(
            options.seed, options.throttle_rate, options.server_error_rate, options.lost_answer_rate
        )
        self.handles: list[ExecutorHandle] = []
        self.executor: ExecutorHandle | None = None
        self._adopt_at: float | None = None
        self._pending_kill: Moment | None = None

    def run(self) -> Gathered:
        status_events.WAIT_SECONDS = RECEIVE_WAIT_SECONDS
        undo = self.faults.install()
        try:
            with LocalBatch(
                port=0,
                step_delay=self.options.step_delay,
                job_mode="inline",
                inline_run_seconds=self.options.inline_run_seconds,
                publish_events=self.plan.status == "events",
            ) as lb:
                prefix = point_executor_at(lb, self.options, self.plan.status)
                self.view = BatchView(lb)
                self.model = SchedulerModel(self.plan, self.options, self.view)
                self._drive(lb)
                return gather(lb, self, prefix)
        finally:
            undo()

    def _start_executor(self) -> ExecutorHandle:
        handle = ExecutorHandle(len(self.handles), self.faults, self.options.executor_parallelism)
        self.handles.append(handle)
        handle.start()
        self.record.start_failures += handle.start_failures
        if self.model.token_generator is None:
            self.model.token_generator = handle.executor.jwt_generator
        return handle

    def _drive(self, lb: LocalBatch) -> None:
        self.executor = self._start_executor()
        self.faults.injecting = True
        if self.options.submit_latency_seconds > 0:
            lb.faults.latency(self.options.submit_latency_seconds, operation="submitjob")
        moments = list(self.plan.moments)
        deadline = time.monotonic() + self.options.timeout
        progress, progressed_at = None, time.monotonic()
        while not self.model.done or self.executor is None:  # a killed executor is replaced first
            now = time.monotonic()
            if now > deadline:
                self.record.timed_out = True
                break
            self._tick()
            if (mark := (self.model.finished, len(self.record.events), len(self.view.entries))) != progress:
                progress, progressed_at = mark, now
            elif now - progressed_at > self.options.stall_seconds:
                self.record.stalled = True
                break
            while moments and moments[0].progress <= self.model.progress and self._can_apply(moments[0]):
                self._apply(lb, moments.pop(0))
            if not self.model.draining and not moments and self.model.all_queued and self.executor:
                self._drain(lb)
            time.sleep(TICK_SECONDS)
        if not self.model.draining:
            self._drain(lb)
        self.record.all_finished_at = time.time()
        self._settle(lb)
        self.record.settled_at = time.time()
        if self.executor is not None:
            self.record.end_returned = self.executor.end(END_TIMEOUT_SECONDS)
            _, delivered = self.executor.drain()
            self.record.events += delivered
        self.record.ended_at = time.time()
        self._wait_for_jobs(lb)

    def _tick(self) -> None:
        if self.executor is None and self._adopt_at is not None and time.monotonic() >= self._adopt_at:
            self._adopt()
        if self.executor is not None:
            buffer, delivered = self.executor.heartbeat()
            self.record.events += delivered
            self.model.on_events(buffer)
        self.model.on_history(self.view.read())
        if self.executor is not None:
            self.model.queue_ready(self.executor)
            self.model.decide(self.executor)

    def _can_apply(self, moment: Moment) -> bool:
        """A kill waits for the executor that replaces the last one killed."""
        return moment.action != "kill" or self.executor is not None

    def _apply(self, lb: LocalBatch, moment: Moment) -> None:
        detail = moment.detail
        if moment.action == "kill":
            assert self.executor is not None
            handle, self.executor = self.executor, None
            handle.kill()
            self._pending_kill = moment
            self._adopt_at = time.monotonic() + detail["adoption_delay"]
            self.record.kills.append(
                Kill(time.time(), handle.generation, handle.lost_events, detail["adoption_delay"])
            )
        elif moment.action == "prune":
            self.record.prunes.append(prune_everything(lb.client("batch")))
        elif moment.action in ("s3_latency_on", "s3_latency_off"):
            on = moment.action == "s3_latency_on"
            for operation in detail["operations"]:
                lb.faults.latency(detail["seconds"] if on else 0, operation=operation)
            if on:
                self.record.latency_windows.append({**detail, "from": time.time(), "to": None})
            else:
                self.record.latency_windows[-1]["to"] = time.time()
        elif moment.action == "malformed_events":
            lb.faults.malformed_events(count=detail["count"])
            self.record.malformed_planted += detail["count"]

    def _adopt(self) -> None:
        """A new scheduler starts: its first look-ups are throttled, then it adopts the orphans."""
        assert self._pending_kill is not None
        detail = self._pending_kill.detail
        generation = len(self.handles)
        self.faults.burst(generation, "ListJobs", detail["throttled_list_jobs"])
        self.faults.burst(generation, "DescribeJobs", detail["throttled_describe_jobs"])
        self.executor = self._start_executor()
        kill = self.record.kills[-1]
        kill.adopted_at = time.time()
        kill.offered, kill.handed_back = self.model.adopt(self.executor)
        kill.adoption_seconds = time.time() - kill.adopted_at
        self._adopt_at = self._pending_kill = None

    def _drain(self, lb: LocalBatch) -> None:
        """Stop injecting faults: AWS calls and jobs behave from now on; what is stuck may start."""
        self.faults.injecting = False
        for window in self.record.latency_windows:
            window["to"] = window["to"] or time.time()
        self.record.faults_at_drain = lb.faults.to_dict()
        lb.faults.clear()
        self.model.drain()
        self.record.drained_at = time.time()

    def _settle(self, lb: LocalBatch) -> None:
        """Every try is over: give the executor time to stop the jobs it still owes a stop (it hunts
        late jobs by name for a while), then note what is still alive and stop it ourselves."""
        deadline = time.monotonic() + self.options.settle_seconds
        while lb.unfinished_jobs() and time.monotonic() < deadline and self.executor is not None:
            buffer, delivered = self.executor.heartbeat()
            self.record.events += delivered
            self.model.on_events(buffer)
            self.model.on_history(self.view.read())
            time.sleep(TICK_SECONDS * 4)
        self.model.on_history(self.view.read())
        self.live_after_settle = {
            job_id: str(lb.runtime.jobs.get(job_id).status) for job_id in lb.unfinished_jobs()
        }
        self.running_after_settle = self.executor.running_keys() if self.executor is not None else []
        batch = lb.client("batch")
        for job_id in self.live_after_settle:
            batch.terminate_job(jobId=job_id, reason="Stopped by the soak: alive after every try was over")
            self.record.cleaned_up.append(job_id)

    def _wait_for_jobs(self, lb: LocalBatch, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while lb.unfinished_jobs() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.model.on_history(self.view.read())
