"""Which derived job definitions ``airflow aws-batch-executor prune-definitions`` may deregister.

Every change of a base definition or of a task's image leaves the previous derived definitions
behind. Only definitions this executor registered (tagged ``airflow-batch-executor.managed``) are ever
candidates, and of those only the ones of this executor's team (a team's executor tags its own; untagged
ones are the global executor's), last used longer ago than the cut-off, and used by no waiting or
running job of any job queue. "Last used" is the ``last-used`` tag the registry refreshes whenever it
looks a definition up again (every 10 minutes while tasks use it), else the registration time. A
scheduler that still remembers a definition pruned under it is refused by SubmitJob and registers it
anew (see ``definition_registry``), so pruning never fails a task.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.definitions.derive import (
    BASE_TAG,
    DEFINITION_TEAM_TAG,
    LAST_USED_TAG,
    MANAGED_TAG,
    REGISTERED_TAG,
)
from airflow_batch_executor.job_contract import WAITING_STATUSES

LIVE_STATUSES = (*sorted(WAITING_STATUSES), "RUNNING")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(\d+)([smhd])$")


def parse_duration(text: str) -> int:
    """``30d``, ``12h``, ``90m`` or ``45s`` in seconds; ValueError saying what is accepted."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration; use a whole number and a unit: 30d, 12h, 90m or 45s")
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class PruneVerdict:
    """One managed definition revision and what pruning does with it."""

    arn: str
    name: str
    revision: int
    base_name: str
    age_seconds: int | None
    prune: bool
    reason: str


def _tag_time(definition: Mapping[str, Any], tag: str) -> int | None:
    try:
        return int((definition.get("tags") or {})[tag])
    except (KeyError, TypeError, ValueError):
        return None


def _last_used(definition: Mapping[str, Any]) -> int | None:
    """When the definition was last used, as far as its tags tell (its registration at the latest)."""
    times = [t for tag in (LAST_USED_TAG, REGISTERED_TAG) if (t := _tag_time(definition, tag)) is not None]
    return max(times, default=None)


def judge(
    definitions: Iterable[Mapping[str, Any]],
    in_use: set[str],
    older_than_seconds: int,
    now: float,
    team: str | None = None,
) -> list[PruneVerdict]:
    """A verdict for each managed ACTIVE definition of ``team``; others are not even listed (pure).

    ``age_seconds`` is the time since the definition was last used.
    """
    verdicts = []
    for definition in definitions:
        tags = definition.get("tags") or {}
        if tags.get(MANAGED_TAG) != "true" or definition.get("status", "ACTIVE") != "ACTIVE":
            continue
        if tags.get(DEFINITION_TEAM_TAG) != team:
            continue
        last_used = _last_used(definition)
        age = int(now - last_used) if last_used is not None else None
        arn = definition["jobDefinitionArn"]
        if arn in in_use:
            prune, reason = False, "used by a waiting or running job"
        elif age is None:
            prune, reason = False, f"no readable {LAST_USED_TAG} or {REGISTERED_TAG} tag"
        elif age < older_than_seconds:
            prune, reason = False, "used more recently than --older-than"
        else:
            prune, reason = True, "unused and older than --older-than"
        verdicts.append(
            PruneVerdict(
                arn,
                definition["jobDefinitionName"],
                int(definition.get("revision", 0)),
                str(tags.get(BASE_TAG, "")),
                age,
                prune,
                reason,
            )
        )
    return sorted(verdicts, key=lambda verdict: (verdict.name, verdict.revision))


def definitions_in_use(gateway: BatchGateway) -> set[str]:
    """ARNs of the job definitions of every waiting or running job, in every job queue."""
    return {
        job["jobDefinition"]
        for queue in gateway.job_queue_names()
        for status in LIVE_STATUSES
        for job in gateway.list_jobs(queue, status=status)
        if job.get("jobDefinition")
    }


def prune_verdicts(
    gateway: BatchGateway, older_than_seconds: int, now: float, team: str | None = None
) -> list[PruneVerdict]:
    """The verdicts for ``team``'s managed definitions (the global executor's for None), from live
    AWS answers."""
    in_use = definitions_in_use(gateway)
    return judge(gateway.job_definitions(), in_use, older_than_seconds, now, team)
