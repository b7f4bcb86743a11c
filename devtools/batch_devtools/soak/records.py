"""Plain records the soak keeps and the invariant checker reads: task instance tries as the model
scheduler saw them, and the events the executor handed the scheduler. No Airflow, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class TryKey(NamedTuple):
    """A task instance try, as the local Batch's ``workload_run`` entries name it."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    try_number: int

    @classmethod
    def of(cls, fields: Any) -> TryKey:
        """From anything with the five fields as attributes (Airflow's TaskInstanceKey) or keys."""
        get = fields.get if isinstance(fields, dict) else lambda name: getattr(fields, name)
        return cls(
            get("dag_id"), get("task_id"), get("run_id"), int(get("map_index")), int(get("try_number"))
        )

    def __str__(self) -> str:
        mapped = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{mapped} run {self.run_id} try {self.try_number}"


@dataclass
class Queueing:
    """One time the scheduler queued a try (again, after a revoke: same try number)."""

    queued_at: float
    generation: int
    revoked_at: float | None = None
    revoke_reason: str | None = None
    """The plan's stage (``early``, ``stuck``, ``timeout``) or ``queued_timeout``."""
    job_at_revoke: str | None = None
    """The queueing's own job, stuck, when it was revoked; None when it had none yet."""


@dataclass
class TryRecord:
    key: TryKey
    job_name: str
    queueings: list[Queueing] = field(default_factory=list)
    ran_at: float | None = None
    """When the model saw its workload run (the task would have called /run)."""
    end: str | None = None
    """``success``, ``failed`` (from the executor), ``failed_by_scheduler`` (revoked once too often)
    or ``handed_back`` (a new scheduler found no job at adoption; the task instance was reset)."""
    ended_at: float | None = None

    @property
    def last_revoked(self) -> bool:
        return bool(self.queueings) and self.queueings[-1].revoked_at is not None

    @property
    def expected_outcomes(self) -> int:
        """The executor owes a try one outcome, none when its last queueing was revoked or it was
        handed back at adoption."""
        return 0 if self.last_revoked or self.end == "handed_back" else 1

    @property
    def finished_at(self) -> float | None:
        """When the try was over for the scheduler."""
        if self.end == "handed_back" or self.end in ("success", "failed"):
            return self.ended_at
        if self.last_revoked:
            return self.queueings[-1].revoked_at
        return None

    def marks(self) -> list[dict[str, Any]]:
        """The scheduler's side of the try's history, as entries like the local Batch's."""
        entries = []
        for number, queueing in enumerate(self.queueings, 1):
            entries.append(
                {
                    "event": "scheduler:queued",
                    "at": queueing.queued_at,
                    "queueing": number,
                    "executor": queueing.generation,
                }
            )
            if queueing.revoked_at is not None:
                entries.append(
                    {
                        "event": "scheduler:revoked",
                        "at": queueing.revoked_at,
                        "queueing": number,
                        "stage": queueing.revoke_reason,
                        "stuck_job": queueing.job_at_revoke,
                    }
                )
        if self.ran_at is not None:
            entries.append({"event": "scheduler:running", "at": self.ran_at})
        if self.end is not None and self.ended_at is not None:
            entries.append({"event": f"scheduler:{self.end}", "at": self.ended_at})
        return entries


@dataclass(frozen=True)
class ExecutorEvent:
    """An event the executor handed the scheduler (``running``, ``success``, ``failed``)."""

    at: float
    generation: int
    key: TryKey
    state: str
    info: str

    def entry(self) -> dict[str, Any]:
        return {
            "event": f"executor:{self.state}",
            "at": self.at,
            "executor": self.generation,
            "info": self.info,
        }
