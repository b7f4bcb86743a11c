"""Registering derived job definitions once, and finding them again.

RegisterJobDefinition makes a new revision on every call, even for identical content, so each derived
definition is looked up first (its name is a hash of its content; its ``hash`` tag must match) and
registered only when no ACTIVE revision exists. The answer is remembered for ``ttl`` seconds, then
checked again; each check also tags the definition with when it was last used, which is what
``prune-definitions`` judges by. A definition deregistered within the remembered window is refused by
SubmitJob ("... is not in ACTIVE status"): the submitter then has the registry ``forget`` it and
places the request again, which registers the definition anew, so a prune never fails a task.

Many submit threads may need the same new definition at once (fifty tasks with one new image): a lock
per name makes one of them look up and register while the others wait for its answer, so exactly one
revision is made. Registrations have a small rate limit of their own, apart from SubmitJob's. Two
schedulers racing on the same new content may each register one revision; both are identical and the
newest is used from then on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from airflow_batch_executor.aws.errors import ApiErrorKind, classify_api_error, describe_api_error
from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.definitions.derive import (
    HASH_TAG,
    LAST_USED_TAG,
    REGISTERED_TAG,
    DerivedDefinition,
)
from airflow_batch_executor.errors import TaskConfigError
from airflow_batch_executor.job_contract import DEFINITION_NOT_ACTIVE
from airflow_batch_executor.metrics import GLOBAL, Metrics
from airflow_batch_executor.submit.rate_limit import RateLimiter

REGISTER_RATE_PER_SECOND = 2.0
REGISTER_BURST = 2.0
RECHECK_SECONDS = 600.0

log = logging.getLogger(__name__)


def definition_not_active(error: ClientError) -> bool:
    """Whether AWS Batch refused a request because its job definition is not (or no longer) ACTIVE."""
    message = str(error.response.get("Error", {}).get("Message", ""))
    return (
        classify_api_error(error) is ApiErrorKind.REJECTED
        and DEFINITION_NOT_ACTIVE.search(message) is not None
    )


class RegistryStopped(RuntimeError):
    """The executor is shutting down; the registration was not made."""


class DefinitionRegistry:
    """Derived definition name → the ARN of its ACTIVE revision, registering it when none exists."""

    def __init__(
        self,
        gateway: BatchGateway,
        *,
        rate: float = REGISTER_RATE_PER_SECOND,
        ttl: float = RECHECK_SECONDS,
        clock: Callable[[], float] = time.time,
        metrics: Metrics = GLOBAL,
    ) -> None:
        self._gateway = gateway
        self._metrics = metrics
        self._ttl = ttl
        self._clock = clock
        self.limiter = RateLimiter(rate, burst=REGISTER_BURST)
        self._stop = threading.Event()
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._known: dict[str, tuple[float, str]] = {}
        self._issued: set[str] = set()

    def stop(self) -> None:
        """Release threads waiting for the rate limit (scheduler shutdown)."""
        self._stop.set()

    def _lock_for(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def ensure(self, derived: DerivedDefinition) -> str:
        """The ARN of an ACTIVE revision with the derived content, registered if there is none."""
        if (arn := self._remembered(derived.name)) is not None:
            return arn
        with self._lock_for(derived.name):
            if (arn := self._remembered(derived.name)) is not None:
                return arn
            if (arn := self.find(derived)) is not None:
                self._metrics.incr("job_definition.found")
                self._mark_used(arn)
            else:
                arn = self._register(derived)
                self._metrics.incr("job_definition.registered")
                log.info("Registered job definition %s, derived from %s", arn, derived.base_name)
            with self._guard:
                self._known[derived.name] = (time.monotonic(), arn)
                self._issued.add(arn)
            return arn

    def forget(self, arn: str) -> bool:
        """Stop remembering the definition with this ARN (Batch says it is not ACTIVE); True when the
        registry handed it out, so placing the request again gets an ACTIVE one (another submission
        refused the same ARN may have registered it anew already)."""
        with self._guard:
            for name in [name for name, (_, known) in self._known.items() if known == arn]:
                del self._known[name]
            return arn in self._issued

    def _mark_used(self, arn: str) -> None:
        """Tag the definition with now as its last use (best effort: pruning falls back on its age)."""
        try:
            self._gateway.tag_resource(arn, {LAST_USED_TAG: str(int(self._clock()))})
        except Exception as error:  # noqa: BLE001 - a missing tag never stops a submission
            log.warning(
                "Could not tag job definition %s with its last use (%s); prune-definitions then judges it "
                "by its registration time. The scheduler needs batch:TagResource on it.",
                arn,
                describe_api_error(error),
            )

    def _remembered(self, name: str) -> str | None:
        with self._guard:
            known = self._known.get(name)
        return known[1] if known is not None and time.monotonic() - known[0] < self._ttl else None

    def find(self, derived: DerivedDefinition) -> str | None:
        """The newest ACTIVE revision registered with this content, or None (no registration)."""
        revisions = [
            definition
            for definition in self._gateway.job_definitions(derived.name)
            if (definition.get("tags") or {}).get(HASH_TAG) == derived.digest
        ]
        newest = max(revisions, key=lambda definition: definition.get("revision", 0), default=None)
        return newest["jobDefinitionArn"] if newest is not None else None

    def _register(self, derived: DerivedDefinition) -> str:
        if not self.limiter.acquire(self._stop):
            raise RegistryStopped("executor shutting down; job definition not registered")
        request: dict[str, Any] = dict(derived.register_request)
        now = str(int(self._clock()))
        request["tags"] = {**request["tags"], REGISTERED_TAG: now, LAST_USED_TAG: now}
        try:
            return self._gateway.register_job_definition(request)
        except ClientError as error:
            if classify_api_error(error) is not ApiErrorKind.REJECTED:
                raise
            raise TaskConfigError(
                f"AWS Batch refused to register the job definition {derived.name} derived from "
                f"{derived.base_name!r} for this task ({describe_api_error(error)})",
                "check the task's job definition fields, and that the scheduler may call "
                "batch:RegisterJobDefinition and batch:TagResource on it and iam:PassRole on its roles",
            ) from error
