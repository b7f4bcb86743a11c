"""Which derived job definitions ``airflow aws-batch-executor prune-definitions`` may deregister.

Every change of a base definition or of a task's image leaves the previous derived definitions
behind. Only definitions this executor registered (tagged ``airflow-batch-executor.managed``) are ever
candidates, and of those only the ones registered longer ago than the cut-off that no waiting or
running job of any job queue still uses: deregistering a definition under a live job's feet is
harmless to that job, but a scheduler that cached it would submit against an INACTIVE revision.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_batch_executor.batch_facts import WAITING_STATUSES
from airflow_batch_executor.gateway import BatchGateway
from airflow_batch_executor.job_definitions import BASE_TAG, MANAGED_TAG, REGISTERED_TAG

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
class Verdict:
    """One managed definition revision and what pruning does with it."""

    arn: str
    name: str
    revision: int
    base_name: str
    age_seconds: int | None
    prune: bool
    reason: str


def _registered_at(definition: Mapping[str, Any]) -> int | None:
    try:
        return int((definition.get("tags") or {})[REGISTERED_TAG])
    except (KeyError, TypeError, ValueError):
        return None


def judge(
    definitions: Iterable[Mapping[str, Any]], in_use: set[str], older_than_seconds: int, now: float
) -> list[Verdict]:
    """A verdict for each managed ACTIVE definition; others are not even listed (pure)."""
    verdicts = []
    for definition in definitions:
        tags = definition.get("tags") or {}
        if tags.get(MANAGED_TAG) != "true" or definition.get("status", "ACTIVE") != "ACTIVE":
            continue
        registered = _registered_at(definition)
        age = int(now - registered) if registered is not None else None
        arn = definition["jobDefinitionArn"]
        if arn in in_use:
            prune, reason = False, "used by a waiting or running job"
        elif age is None:
            prune, reason = False, f"no readable {REGISTERED_TAG} tag"
        elif age < older_than_seconds:
            prune, reason = False, "registered more recently than --older-than"
        else:
            prune, reason = True, "unused and older than --older-than"
        verdicts.append(
            Verdict(
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


def prune_verdicts(gateway: BatchGateway, older_than_seconds: int, now: float) -> list[Verdict]:
    """The verdicts for the account's managed definitions, from live AWS answers."""
    in_use = definitions_in_use(gateway)
    return judge(gateway.job_definitions(), in_use, older_than_seconds, now)
