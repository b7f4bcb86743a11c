"""Hold mode: jobs that move through Batch's statuses on a clock, without a thread or a process.

For load tests (thousands of jobs) a job needs to look like a Batch job from the API, not to run
anything. A held job is planned once, when it is submitted: it spends ``step_delay`` seconds in
each of SUBMITTED, PENDING, RUNNABLE and STARTING, then stays RUNNING until it is terminated, or
until ``hold_seconds`` have passed (then it SUCCEEDS with exit code 0), or until its
``attemptDurationSeconds × time_scale`` timeout. Its status is worked out from the clock whenever
it is read, so ten thousand held jobs cost memory only.

Job faults are claimed at submission (in process mode they are claimed when the job reaches the
phase): ``stuck_in_runnable`` keeps the job RUNNABLE, ``fail_before_start`` fails it when it
would reach RUNNING, ``host_terminated`` fails it ``after_seconds`` into RUNNING,
``fail_after_start`` makes its container exit non-zero. Held jobs get one attempt: no Batch retries,
and SubmitJob refuses a job a ``retry_after_start`` fault matches.

A blocked job queue is no fault claimed at submission: it stops a held job's clock in RUNNABLE while it
lasts, and the plan then goes on that much later (:meth:`HoldPlan.shifted`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING = "SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"
SUCCEEDED, FAILED = "SUCCEEDED", "FAILED"
STEPS_BEFORE_RUNNING = (SUBMITTED, PENDING, RUNNABLE, STARTING)
STEPS_TO_RUNNABLE = STEPS_BEFORE_RUNNING[: STEPS_BEFORE_RUNNING.index(RUNNABLE) + 1]
_ORDER = (*STEPS_BEFORE_RUNNING, RUNNING)


def comes_after(status: str, than: str | None) -> bool:
    """Whether ``status`` is further on the way to RUNNING than ``than``.

    A plan moved on after a queue block is read, at the moment it was held, a float's hair before
    it: without this check the job could step back from RUNNABLE to PENDING.
    """
    return than not in _ORDER or (status in _ORDER and _ORDER.index(status) > _ORDER.index(than))


@dataclass(frozen=True)
class HoldEnd:
    """How a held job ends on its own, if nobody terminates it first."""

    at: float
    """Wall-clock time (seconds since the epoch)."""
    status: str
    reason: str
    exit_code: int | None = None
    container_reason: str | None = None
    started: bool = True
    """Whether the job reached RUNNING before it ended."""


@dataclass(frozen=True)
class HoldPlan:
    """The clock of one held job: when it changes status, and how it ends."""

    created: float
    step_delay: float
    stuck_reason: str | None = None
    """Set when the job stays RUNNABLE (capacity) until it is terminated."""
    end: HoldEnd | None = None

    @property
    def runnable_from(self) -> float:
        """When the job reaches RUNNABLE (with ``step_delay`` 0, the moment it passes through it)."""
        return self.created + STEPS_BEFORE_RUNNING.index(RUNNABLE) * self.step_delay

    @property
    def runnable_until(self) -> float:
        """When the job leaves RUNNABLE for STARTING; never for a job stuck there."""
        if self.stuck_reason is not None:
            return float("inf")
        return self.created + STEPS_BEFORE_RUNNING.index(STARTING) * self.step_delay

    def shifted(self, seconds: float) -> HoldPlan:
        """The same plan ``seconds`` later: a job held in RUNNABLE by a blocked queue goes on, once
        unblocked, from where it stopped."""
        end = replace(self.end, at=self.end.at + seconds) if self.end is not None else None
        return replace(self, created=self.created + seconds, end=end)

    @property
    def running_at(self) -> float | None:
        """When the job reaches RUNNING; None when it never does."""
        if self.stuck_reason is not None or (self.end is not None and not self.end.started):
            return None
        return self.created + len(STEPS_BEFORE_RUNNING) * self.step_delay

    def next_change(self, after: float) -> float | None:
        """When the status next changes on its own, later than ``after``; None when it never does.

        The event publisher catches a held job up at these moments, so each status is published as
        it begins, and a job that only stays RUNNING costs nothing until it ends.
        """
        if self.end is not None and after >= self.end.at:
            return None
        if self.stuck_reason is not None:
            last_step = STEPS_BEFORE_RUNNING.index(RUNNABLE)
        elif self.end is not None and not self.end.started:
            last_step = STEPS_BEFORE_RUNNING.index(STARTING)
        else:
            last_step = len(STEPS_BEFORE_RUNNING)
        steps = range(1, last_step + 1) if self.step_delay > 0 else range(0)
        changes = [self.created + step * self.step_delay for step in steps]
        if self.end is not None:
            changes = [at for at in changes if at < self.end.at] + [self.end.at]
        return next((at for at in changes if at > after), None)

    def steps_passed(self, now: float) -> tuple[str, ...]:
        """The statuses before RUNNING that the job has entered by ``now``, in order.

        A reader that comes late (a busy publisher thread) still walks through each of them, so every
        status is published once and in order, as Batch does, however late the job is caught up. A plan
        without steps (``step_delay`` 0, for load tests) goes from SUBMITTED straight to where it is.
        """
        if self.step_delay <= 0:
            return STEPS_BEFORE_RUNNING[:1]
        entered = int((now - self.created) / self.step_delay) + 1
        if self.stuck_reason is not None:
            entered = min(entered, STEPS_BEFORE_RUNNING.index(RUNNABLE) + 1)
        return STEPS_BEFORE_RUNNING[: max(1, min(entered, len(STEPS_BEFORE_RUNNING)))]

    def status_at(self, now: float) -> str:
        """The status before any termination; an ended job reports the end's status."""
        if self.end is not None and now >= self.end.at:
            return self.end.status
        steps = (
            int((now - self.created) / self.step_delay) if self.step_delay > 0 else len(STEPS_BEFORE_RUNNING)
        )
        if self.stuck_reason is not None:
            return STEPS_BEFORE_RUNNING[min(max(steps, 0), STEPS_BEFORE_RUNNING.index(RUNNABLE))]
        if steps >= len(STEPS_BEFORE_RUNNING):
            return RUNNING if self.end is None or self.end.started else STARTING
        return STEPS_BEFORE_RUNNING[max(steps, 0)]


def plan_hold(
    *,
    created: float,
    step_delay: float,
    hold_seconds: float | None,
    timeout_seconds: float | None,
    stuck_reason: str | None = None,
    fail_to_start_reason: str | None = None,
    host_terminated_after: float | None = None,
    host_terminated_reason: str = "",
    exit_code_after_start: int | None = None,
    container_exited: str,
    failed_to_start: str,
    timed_out: str,
) -> HoldPlan:
    """Plan a held job: the earliest of its possible ends wins.

    ``exit_code_after_start`` (the ``fail_after_start`` fault) makes the container exit with that code
    where it would have succeeded: after ``hold_seconds``, or at once when held until terminated.
    """
    if stuck_reason is not None:
        return HoldPlan(created, step_delay, stuck_reason=stuck_reason)
    running_at = created + len(STEPS_BEFORE_RUNNING) * step_delay
    if fail_to_start_reason is not None:
        end = HoldEnd(
            running_at, FAILED, failed_to_start, container_reason=fail_to_start_reason, started=False
        )
        return HoldPlan(created, step_delay, end=end)
    candidates = []
    if exit_code_after_start is not None:
        ran_for = hold_seconds if hold_seconds is not None and hold_seconds > 0 else 0.0
        candidates.append(
            HoldEnd(running_at + ran_for, FAILED, container_exited, exit_code=exit_code_after_start)
        )
    elif hold_seconds is not None and hold_seconds > 0:
        candidates.append(HoldEnd(running_at + hold_seconds, SUCCEEDED, container_exited, exit_code=0))
    if timeout_seconds:
        # A timed-out container is stopped with SIGTERM: exit code 128 + 15, as in process mode.
        candidates.append(HoldEnd(running_at + timeout_seconds, FAILED, timed_out, exit_code=143))
    if host_terminated_after is not None:
        candidates.append(
            HoldEnd(
                running_at + host_terminated_after,
                FAILED,
                host_terminated_reason,
                container_reason=host_terminated_reason,
            )
        )
    end = min(candidates, key=lambda item: item.at) if candidates else None
    return HoldPlan(created, step_delay, end=end)
