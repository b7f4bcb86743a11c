"""The fault plan of one soak run, drawn from its seed alone: the same seed and options make the same
plan (pure: no clock, no I/O, no Airflow).

Faults that hit jobs are planned per task instance try and aimed at its jobs by name (a try's job
name is deterministic, see ``airflow_batch_executor.requests.naming``), so a failing seed hits the same tries
again. Faults of the whole run (executor kills, the prune, S3 latency, malformed status messages)
are placed on the run's progress: the share of task instances finished.

Every kind whose rate is above 0 is planned at least once, so a short run still covers them all.

With the command transport no Batch retry after start is planned: the executor submits every job with
``retryStrategy.attempts = 1``, so AWS never runs such a retry, and the command (which carries the
workload itself) would simply run the try again. The local Batch's ``retry_after_start`` retries
regardless of the strategy; in S3 mode it checks the second line of defence (a consumed workload
object never comes back).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from batch_devtools.soak.options import SoakOptions

DAG_ID = "soak"
MAPPED_TASK = "mapped"
IMAGES = ("soak/task:blue", "soak/task:green", "soak/task:amber")
FAIL_EXIT_CODE = 3
"""Exit code of a container that ``fail_after_start`` fails (not one the bootstrap uses)."""
MAX_SUBMIT_JOB_ATTEMPTS = 3
"""[aws_batch_executor] max_submit_job_attempts of the soak's executors (the default)."""

BEFORE_START = ("fail_before_start", "fail_before_start_permanent", "fail_before_start_every_attempt")
AFTER_START = ("fail_after_start", "host_terminated", "retry_after_start")
JOB_FAULTS = (*BEFORE_START, *AFTER_START, "vanish")
EVENT_FAULTS = ("drop_events", "duplicate_events", "delay_events", "reorder_events")
EVENT_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED")
"""Statuses (almost) every job passes through, so an event fault aimed at one is used."""
REVOKE_STAGES = ("early", "in_flight", "stuck", "timeout")
S3_OPERATIONS = ("putobject", "getobject", "deleteobjects")


@dataclass(frozen=True)
class Revoke:
    """One revoke the scheduler makes of a queueing of a try.

    ``early``: ``delay`` seconds after queueing (mostly before submit); ``in_flight`` (S3 transport):
    once the queueing's workload object is written, while its SubmitJob is on the wire (or, if that
    moment is missed, as ``stuck``); ``stuck``: once its job has waited ``delay`` seconds for
    capacity; ``timeout``: the job waits until the queued timeout revokes it. A job the revoked
    queueing still gets is held by the ``stuck_in_runnable`` planted for the revoke.
    """

    stage: str
    delay: float = 0.0


@dataclass(frozen=True)
class TryPlan:
    job_faults: tuple[str, ...] = ()
    event_faults: tuple[tuple[str, str], ...] = ()
    """(fault, status) pairs: ``drop_events`` of the job's RUNNING event, say."""
    revokes: tuple[Revoke, ...] = ()
    stuck_hold: float | None = None
    """The job waits for capacity this long, then starts (its token is refreshed meanwhile)."""

    @property
    def stuck_faults(self) -> int:
        """``stuck_in_runnable`` faults to plant: one per planned revoke, one for a planned wait."""
        return len(self.revokes) + (1 if self.stuck_hold is not None else 0)

    @property
    def empty(self) -> bool:
        return self == TryPlan()


@dataclass(frozen=True)
class TaskPlan:
    task_id: str
    map_index: int
    retries: int
    image: str | None
    tries: tuple[TryPlan, ...]
    """The plans of try 1, 2, …; a try beyond them (after an adoption reset) has no faults."""

    def try_plan(self, try_number: int) -> TryPlan:
        return self.tries[try_number - 1] if try_number <= len(self.tries) else TryPlan()

    @property
    def executor_config(self) -> dict[str, Any] | None:
        if self.image is None:
            return None
        return {"jobDefinitionOverrides": {"containerProperties": {"image": self.image}}}


@dataclass(frozen=True)
class Moment:
    """A fault of the whole run, due once ``progress`` of the task instances are finished."""

    progress: float
    action: str
    """``kill``, ``prune``, ``s3_latency_on``, ``s3_latency_off`` or ``malformed_events``."""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SoakPlan:
    seed: int
    status: str
    run_id: str
    tasks: tuple[TaskPlan, ...]
    moments: tuple[Moment, ...]

    def planned(self) -> dict[str, int]:
        """How often each kind was planned (what happened is counted from the history)."""
        counts: Counter[str] = Counter()
        for task in self.tasks:
            counts["image"] += task.image is not None
            for plan in task.tries:
                counts.update(plan.job_faults)
                counts.update(fault for fault, _ in plan.event_faults)
                counts.update(f"revoke_{revoke.stage}" for revoke in plan.revokes)
                counts["stuck_then_started"] += plan.stuck_hold is not None
        counts.update(moment.action for moment in self.moments if not moment.action.endswith("_off"))
        return {kind: count for kind, count in sorted(counts.items()) if count}


def status_source(options: SoakOptions) -> str:
    """The status source asked for, else one drawn from the seed (so seeds mix the two)."""
    if options.status is not None:
        return options.status
    return random.Random(f"{options.seed}:status").choice(("events", "polling"))


def make_plan(options: SoakOptions) -> SoakPlan:
    if options.transport == "command":
        options = replace(options, retry_after_start_rate=0.0)
    rng = random.Random(f"{options.seed}:plan")
    status = status_source(options)
    events = status == "events"
    tasks = [_task(rng, options, index, events) for index in range(options.tasks)]
    _ensure_every_kind(rng, options, tasks, events)
    return SoakPlan(
        seed=options.seed,
        status=status,
        run_id=f"soak-{options.seed}",
        tasks=tuple(_renumber_mapped(tasks)),
        moments=tuple(sorted(_moments(rng, options, events), key=lambda moment: moment.progress)),
    )


def _task(rng: random.Random, options: SoakOptions, index: int, events: bool) -> TaskPlan:
    retries = rng.choices((0, 1, 2), weights=(3, 5, 2))[0]
    mapped = rng.random() < 0.2
    image = rng.choice(IMAGES) if rng.random() < options.image_rate else None
    tries = tuple(_try(rng, options, events) for _ in range(retries + 1))
    return TaskPlan(
        task_id=MAPPED_TASK if mapped else f"task-{index:05d}",
        map_index=0 if mapped else -1,
        retries=retries,
        image=image,
        tries=tries,
    )


def _renumber_mapped(tasks: list[TaskPlan]) -> list[TaskPlan]:
    """Give the mapped task's instances their map indexes 0, 1, 2, … in order."""
    numbered, index = [], 0
    for task in tasks:
        if task.task_id == MAPPED_TASK:
            task = TaskPlan(task.task_id, index, task.retries, task.image, task.tries)
            index += 1
        numbered.append(task)
    return numbered


def _try(rng: random.Random, options: SoakOptions, events: bool) -> TryPlan:
    faults: list[str] = []
    if rng.random() < options.fail_before_start_rate:
        faults.append(rng.choices(BEFORE_START, weights=(6, 2, 2))[0])
    draw = rng.random()
    threshold = 0.0
    for kind, rate in zip(
        AFTER_START,
        (options.fail_after_start_rate, options.host_terminated_rate, options.retry_after_start_rate),
        strict=True,
    ):
        threshold += rate
        if draw < threshold:
            faults.append(kind)
            break
    if rng.random() < options.vanish_rate:
        faults.append("vanish")
    event_faults = []
    if events and rng.random() < options.event_fault_rate:
        event_faults.append(_event_fault(rng))
    revokes: tuple[Revoke, ...] = ()
    if rng.random() < options.revoke_rate:
        count = rng.choices((1, 2, 3), weights=(16, 3, 1))[0]
        revokes = tuple(_revoke(rng, revoke_stages(options)) for _ in range(count))
    hold = _hold(rng, options) if rng.random() < options.stuck_rate else None
    return TryPlan(tuple(faults), tuple(event_faults), revokes, hold)


def _event_fault(rng: random.Random, kind: str | None = None) -> tuple[str, str]:
    return (kind or rng.choice(EVENT_FAULTS), rng.choices(EVENT_STATUSES, weights=(1, 1, 2, 2, 3, 3))[0])


def _revoke(rng: random.Random, stages: tuple[str, ...], stage: str | None = None) -> Revoke:
    stage = stage or rng.choices(stages, weights=(4, 4, 4, 1)[-len(stages) :])[0]
    delay = {"early": rng.uniform(0.02, 0.25), "stuck": rng.uniform(0.2, 3.0)}.get(stage, 0.0)
    return Revoke(stage, round(delay, 3))


def revoke_stages(options: SoakOptions) -> tuple[str, ...]:
    """The stages a revoke can be planned at; ``in_flight`` needs the S3 transport's object write."""
    return REVOKE_STAGES if options.transport == "s3" else tuple(s for s in REVOKE_STAGES if s != "in_flight")


def _hold(rng: random.Random, options: SoakOptions) -> float:
    """Long enough for the token to be past half its life (so it is refreshed), short enough to start
    before the queued timeout revokes the task."""
    hold = options.token_lifetime * rng.uniform(0.65, 0.9)
    return round(min(hold, max(0.5, options.queued_timeout - 4.0)), 3)


def _ensure_every_kind(rng: random.Random, options: SoakOptions, tasks: list[TaskPlan], events: bool) -> None:
    """Plan each enabled kind at least once, on the first try of a task that has no faults yet."""
    rates = {
        "fail_before_start": options.fail_before_start_rate,
        "fail_before_start_permanent": options.fail_before_start_rate,
        "fail_before_start_every_attempt": options.fail_before_start_rate,
        "fail_after_start": options.fail_after_start_rate,
        "host_terminated": options.host_terminated_rate,
        "retry_after_start": options.retry_after_start_rate,
        "vanish": options.vanish_rate,
    }
    present: Counter[str] = Counter()
    for task in tasks:
        for plan in task.tries:
            present.update(plan.job_faults)
            present.update(fault for fault, _ in plan.event_faults)
            present.update(f"revoke_{revoke.stage}" for revoke in plan.revokes)
            present["stuck"] += plan.stuck_hold is not None
    missing: list[TryPlan] = [
        TryPlan(job_faults=(kind,)) for kind, rate in rates.items() if rate and not present[kind]
    ]
    if events and options.event_fault_rate:
        missing += [
            TryPlan(event_faults=(_event_fault(rng, kind),)) for kind in EVENT_FAULTS if not present[kind]
        ]
    if options.revoke_rate:
        stages = revoke_stages(options)
        missing += [
            TryPlan(revokes=(_revoke(rng, stages, stage),))
            for stage in stages
            if not present[f"revoke_{stage}"]
        ]
    if options.stuck_rate and not present["stuck"]:
        missing.append(TryPlan(stuck_hold=_hold(rng, options)))
    free = [index for index, task in enumerate(tasks) if all(plan.empty for plan in task.tries)]
    for plan, index in zip(missing, rng.sample(free, min(len(missing), len(free))), strict=False):
        task = tasks[index]
        tasks[index] = TaskPlan(
            task.task_id, task.map_index, task.retries, task.image, (plan, *task.tries[1:])
        )
    if options.image_rate and len({task.image for task in tasks if task.image}) < 2:
        for index, image in zip(rng.sample(range(len(tasks)), min(2, len(tasks))), IMAGES, strict=False):
            task = tasks[index]
            tasks[index] = TaskPlan(task.task_id, task.map_index, task.retries, image, task.tries)


def _moments(rng: random.Random, options: SoakOptions, events: bool) -> list[Moment]:
    moments = []
    kills = options.kills if options.kills is not None else rng.choice((1, 2))
    for position in _spread(rng, kills, 0.15, 0.85):
        moments.append(
            Moment(
                position,
                "kill",
                {
                    "adoption_delay": round(rng.uniform(0.5, 3.0), 3),
                    "throttled_list_jobs": rng.randint(6, 12),
                    "throttled_describe_jobs": rng.randint(6, 12),
                },
            )
        )
    moments += [Moment(position, "prune") for position in _spread(rng, options.prunes, 0.3, 0.8)]
    if options.s3_latency_share > 0 and options.s3_latency_seconds > 0:
        length = min(options.s3_latency_share, 0.8) / 2
        for window in range(2):
            start = rng.uniform(0.05, 0.9 - length)
            operations = sorted(rng.sample(S3_OPERATIONS, rng.randint(1, len(S3_OPERATIONS))))
            if window == 0 and "putobject" not in operations:
                operations.append("putobject")  # SubmitJob waits behind the write: revokes land in flight
            detail = {"operations": operations, "seconds": options.s3_latency_seconds}
            moments += [
                Moment(start, "s3_latency_on", detail),
                Moment(start + length, "s3_latency_off", detail),
            ]
    if events and options.malformed_events > 0:
        bursts = min(4, options.malformed_events)
        sizes = [
            options.malformed_events // bursts + (i < options.malformed_events % bursts)
            for i in range(bursts)
        ]
        for position, size in zip(_spread(rng, bursts, 0.1, 0.9), sizes, strict=True):
            moments.append(Moment(position, "malformed_events", {"count": size}))
    return moments


def _spread(rng: random.Random, count: int, low: float, high: float) -> list[float]:
    return sorted(round(rng.uniform(low, high), 4) for _ in range(count))
