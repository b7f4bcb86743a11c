"""A readable table of what ran: each task instance next to the Batch job that ran its latest try.

The job comes from the task instance's ``external_executor_id`` (what the executor stored) and
its name and timings from DescribeJobs (what Batch says), so the table shows both sides agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batch_devtools.devstack.metadata import TaskInstanceRow

HEADERS = ("dag", "task", "state", "try", "batch job id", "job name", "duration")


@dataclass(frozen=True)
class SummaryRow:
    dag_id: str
    task: str
    state: str
    try_number: int
    job_id: str
    job_name: str
    duration: str

    def cells(self) -> tuple[str, ...]:
        return (
            self.dag_id,
            self.task,
            self.state,
            str(self.try_number),
            self.job_id,
            self.job_name,
            self.duration,
        )


def _duration(job: Mapping[str, Any] | None, ti: TaskInstanceRow) -> str:
    if job and job.get("startedAt") and job.get("stoppedAt"):
        return f"{(job['stoppedAt'] - job['startedAt']) / 1000:.1f}s"
    if ti.start_date and ti.end_date:
        return f"{(ti.end_date - ti.start_date).total_seconds():.1f}s"
    return "-"


def summary_rows(tis: Sequence[TaskInstanceRow], jobs: Mapping[str, Mapping[str, Any]]) -> list[SummaryRow]:
    """``jobs`` maps job id to its DescribeJobs record."""
    rows = []
    for ti in tis:
        job = jobs.get(ti.external_executor_id or "")
        task = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        rows.append(
            SummaryRow(
                dag_id=ti.dag_id,
                task=task,
                state=ti.state or "none",
                try_number=ti.try_number,
                job_id=ti.external_executor_id or "-",
                job_name=str(job["jobName"]) if job else "-",
                duration=_duration(job, ti),
            )
        )
    return rows


def render_table(rows: Sequence[SummaryRow]) -> str:
    table = [HEADERS, *(row.cells() for row in rows)]
    widths = [max(len(line[column]) for line in table) for column in range(len(HEADERS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
