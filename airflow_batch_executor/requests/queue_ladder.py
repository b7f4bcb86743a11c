"""Which job queue a task's next job goes to after Spot reclaimed its earlier ones: the fallback ladder.

A try whose Spot instance is reclaimed after its container started fails, as it should, and Airflow's
``retries`` run it again; but on the same Spot queue it can be reclaimed again, try after try.
``[aws_batch_executor] queue_fallbacks`` maps a queue to a fallback queue (say, Spot to On-Demand) and
a number of reclaims on it after which a task instance's next job goes to the fallback instead. Rungs
chain (``spot → spot-large → on-demand``); a loop is refused at start-up.

Pure: the reclaims counted so far are the caller's to find (``recovery.reclaims``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

OPTION = "queue_fallbacks"
RECLAIM_EVENT = "batch job reclaimed"
FALLBACK_EVENT = "batch job fallback"
"""The task event-log rows of a reclaimed job, and of a job the ladder sent to a fallback queue."""
EXAMPLE = '{"spot-queue": {"fallback": "on-demand-queue", "after_reclaims": 2}}'


@dataclass(frozen=True)
class Rung:
    """Jobs of ``queue`` go to ``fallback`` once ``after_reclaims`` of them were reclaimed on it."""

    queue: str
    fallback: str
    after_reclaims: int


@dataclass(frozen=True)
class QueueChoice:
    """The queue a job goes to, and, when the ladder moved it, why (for the task's event log)."""

    queue: str
    reason: str | None = None


class LadderError(ValueError):
    """The option's value cannot be a ladder; the message says what is wrong with it."""


def parse_ladder(raw: str | None) -> dict[str, Rung]:
    """The rungs of ``queue_fallbacks``'s JSON, by queue; :class:`LadderError` for a bad value."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise LadderError(f"is not valid JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(value, dict):
        raise LadderError(f"is a JSON {type(value).__name__}, not an object of queue → fallback")
    rungs: dict[str, Rung] = {}
    for queue, rung in value.items():
        if not isinstance(rung, dict) or set(rung) - {"fallback", "after_reclaims"}:
            raise LadderError(f"has {queue!r}: {rung!r}; each queue maps to {{'fallback', 'after_reclaims'}}")
        fallback, after = rung.get("fallback"), rung.get("after_reclaims", 1)
        if not isinstance(fallback, str) or not fallback.strip() or fallback == queue:
            raise LadderError(f"gives {queue!r} the fallback {fallback!r}; name another job queue")
        if not isinstance(after, int) or isinstance(after, bool) or after < 1:
            raise LadderError(f"gives {queue!r} after_reclaims {after!r}; use a whole number ≥ 1")
        rungs[queue] = Rung(queue, fallback, after)
    for queue in rungs:
        QueueLadder(rungs).chain(queue)
    return rungs


class QueueLadder:
    """The rungs of ``queue_fallbacks``: where a queue's jobs fall back to, and when."""

    def __init__(self, rungs: Mapping[str, Rung]) -> None:
        self._rungs = dict(rungs)

    def __bool__(self) -> bool:
        return bool(self._rungs)

    def has_fallback(self, queue: str) -> bool:
        """Whether reclaims can move a job routed to ``queue`` elsewhere."""
        return queue in self._rungs

    def fallbacks(self) -> list[str]:
        """Every fallback queue (for the health check)."""
        return list(dict.fromkeys(rung.fallback for rung in self._rungs.values()))

    def chain(self, queue: str) -> tuple[str, ...]:
        """``queue`` and every queue below it: where a job of a task routed to ``queue`` may be."""
        chain = [queue]
        while (rung := self._rungs.get(chain[-1])) is not None:
            if rung.fallback in chain:
                loop = " → ".join([*chain[chain.index(rung.fallback) :], rung.fallback])
                raise LadderError(f"has a loop ({loop}); every chain of fallbacks must end")
            chain.append(rung.fallback)
        return tuple(chain)

    def choose(self, queue: str, reclaims: Mapping[str, int]) -> QueueChoice:
        """Where a task routed to ``queue`` goes, given how many of its jobs Spot reclaimed per queue."""
        chosen, steps = queue, []
        while (rung := self._rungs.get(chosen)) is not None and reclaims.get(
            chosen, 0
        ) >= rung.after_reclaims:
            steps.append(f"{reclaims[chosen]} reclaimed on {chosen} (fallback after {rung.after_reclaims})")
            chosen = rung.fallback
        if chosen == queue:
            return QueueChoice(queue)
        return QueueChoice(
            chosen,
            f"Spot reclaims send this task instance's job to job queue {chosen} instead of {queue}: "
            + "; ".join(steps)
            + f" ([aws_batch_executor] {OPTION}).",
        )

    def reclaim_note(self, host: str, job_id: str, job_name: str, queue: str) -> str:
        """The event-log line for a reclaimed job: what Spot took, and what the ladder does next."""
        note = f"Spot reclaimed {host} running Batch job {job_id} ({job_name}) on job queue {queue}."
        if (rung := self._rungs.get(queue)) is not None:
            note += (
                f" Once {rung.after_reclaims} of this task instance's jobs were reclaimed on {queue}, its"
                f" next job goes to {rung.fallback} ([aws_batch_executor] {OPTION})."
            )
        return note


def queue_label(queue: str) -> str:
    """A queue's name as a metric label: the name alone, also when the queue is given as an ARN."""
    return queue.rsplit("/", 1)[-1]
