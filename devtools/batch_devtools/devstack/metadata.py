"""Reads Airflow's metadata database directly, so tests check what Airflow recorded, not what an
API chose to show.

Plain SQL over the few columns that matter keeps this independent of Airflow's ORM models and
of the test process's own Airflow configuration.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy
from sqlalchemy.engine import Engine

TaskKey = tuple[str, int]


@dataclass(frozen=True)
class TaskInstanceRow:
    """One task instance as the metadata database has it (the latest try)."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    state: str | None
    try_number: int
    external_executor_id: str | None
    queue: str | None
    start_date: datetime | None
    end_date: datetime | None

    @property
    def key(self) -> TaskKey:
        return (self.task_id, self.map_index)


@dataclass(frozen=True)
class TaskEvent:
    """One row of Airflow's event log (table ``log``), as the executor's ``log_task_event`` writes it."""

    task_id: str | None
    map_index: int | None
    try_number: int | None
    event: str
    extra: str | None


@dataclass(frozen=True)
class CallbackRow:
    """One executor callback (a deadline alert's), as the scheduler recorded its outcome."""

    id: str
    state: str | None
    output: str | None
    data: str
    """The callback's data as stored (Airflow's serialized JSON): its path, kwargs, dag_id, run."""


def _as_datetime(value: Any) -> datetime | None:
    """SQLite hands timestamps of a plain-SQL query back as text; PostgreSQL as datetimes."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


class MetadataReader:
    """Queries over one stack's metadata database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _rows(self, sql: str, **params: Any) -> list[Any]:
        with self._engine.connect() as connection:
            return list(connection.execute(sqlalchemy.text(sql), params))

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstanceRow]:
        rows = self._rows(
            "SELECT dag_id, task_id, run_id, map_index, state, try_number, external_executor_id, queue, "
            "start_date, end_date FROM task_instance WHERE dag_id = :dag_id AND run_id = :run_id "
            "ORDER BY task_id, map_index",
            dag_id=dag_id,
            run_id=run_id,
        )
        return [
            TaskInstanceRow(*row[:8], start_date=_as_datetime(row[8]), end_date=_as_datetime(row[9]))
            for row in rows
        ]

    def task_events(self, dag_id: str, run_id: str, task_id: str | None = None) -> list[TaskEvent]:
        """Rows of Airflow's event log (table ``log``) for one run, oldest first."""
        rows = self._rows(
            "SELECT task_id, map_index, try_number, event, extra FROM log "
            "WHERE dag_id = :dag_id AND run_id = :run_id AND (:task_id IS NULL OR task_id = :task_id) "
            "ORDER BY id",
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
        )
        return [TaskEvent(*row) for row in rows]

    def callbacks(self, ids: list[str]) -> dict[str, CallbackRow]:
        """Callbacks by id (a UUID, however the database stores it)."""
        wanted = {str(uuid.UUID(value)) for value in ids}
        rows = self._rows("SELECT id, state, output, data FROM callback")
        found = (CallbackRow(str(uuid.UUID(str(row[0]))), row[1], row[2], str(row[3])) for row in rows)
        return {row.id: row for row in found if row.id in wanted}

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self._rows(
            "SELECT state FROM dag_run WHERE dag_id = :dag_id AND run_id = :run_id",
            dag_id=dag_id,
            run_id=run_id,
        )
        return rows[0][0] if rows else None

    def parsed_dag_ids(self) -> set[str]:
        """DAGs the DAG processor has serialized and that are not stale: the ones that can be triggered."""
        rows = self._rows(
            "SELECT dag.dag_id FROM dag JOIN serialized_dag ON serialized_dag.dag_id = dag.dag_id "
            "WHERE NOT dag.is_stale"
        )
        return {row[0] for row in rows}

    def dag_teams(self) -> dict[str, str | None]:
        """The team owning each DAG (multi-team mode), as the scheduler resolves it: DAG → bundle → team."""
        rows = self._rows(
            "SELECT dag.dag_id, dag_bundle_team.team_name FROM dag "
            "LEFT JOIN dag_bundle_team ON dag_bundle_team.dag_bundle_name = dag.bundle_name"
        )
        return {dag_id: team for dag_id, team in rows}

    def import_errors(self) -> list[str]:
        rows = self._rows("SELECT filename, stacktrace FROM import_error")
        return [f"{filename}:\n{stacktrace}" for filename, stacktrace in rows]

    def running_jobs(self, job_type: str) -> list[int]:
        """Ids of jobs (``SchedulerJob``, ``DagProcessorJob``) that are running."""
        rows = self._rows(
            "SELECT id FROM job WHERE job_type = :job_type AND state = 'running' ORDER BY id",
            job_type=job_type,
        )
        return [row[0] for row in rows]
