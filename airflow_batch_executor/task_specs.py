"""What the executor reads from Airflow's workloads and task instances: one :class:`JobSpec`.

Every path that needs a job's request, name or queue (submitting a workload, adopting a task instance
after a restart, ``airflow aws-batch-executor render``) starts from a JobSpec built here, so request
building, naming and adoption work on plain values and Airflow's model shapes are read in one place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from airflow.executors import workloads

from airflow_batch_executor.naming import WorkloadIdentity

TASK_SDK_MODULE = "airflow.sdk.execution_time.execute_workload"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSpec:
    """Everything the request factory needs about one workload, and nothing Airflow-specific."""

    identity: WorkloadIdentity
    command: list[str]
    airflow_queue: str | None
    executor_config: Any
    execution_timeout: float | None = None
    priority_weight: int | None = None
    workload: Any = None  # the scheduler's workload, handed over again (freshly signed) at each submit


def task_sdk_command(workload_json: str) -> list[str]:
    """The container command that runs a workload with the Task SDK inside the job."""
    return ["python", "-m", TASK_SDK_MODULE, "--json-string", workload_json]


def workload_command(workload: Any) -> list[str]:
    """The Task SDK command for a workload handed over by the scheduler."""
    return task_sdk_command(workload.model_dump_json())


@lru_cache(maxsize=256)
def _execution_timeouts(dag_version_id: Any) -> dict[str, float]:
    """Task id → ``execution_timeout`` seconds for one DAG version (immutable, so cached for good).

    A version whose DAG cannot be read is cached as having no timeouts: its tasks still run, without
    a Batch-side timeout, which is better than failing them for a missing safety net (or querying
    again for every task of that version).
    """
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    try:
        with create_session() as session:
            model = session.scalar(
                select(SerializedDagModel).where(SerializedDagModel.dag_version_id == dag_version_id)
            )
            tasks = model.dag.tasks if model is not None else []
            return {
                task.task_id: task.execution_timeout.total_seconds()
                for task in tasks
                if getattr(task, "execution_timeout", None)
            }
    except Exception as error:  # noqa: BLE001 - an unreadable DAG must not fail its tasks
        log.warning("Could not read the execution_timeout of DAG version %s: %s", dag_version_id, error)
        return {}


def execution_timeout(ti: Any) -> float | None:
    """The task's ``execution_timeout`` in seconds, read from its serialized DAG version."""
    return _execution_timeouts(ti.dag_version_id).get(ti.task_id)


def workload_key(workload: Any) -> Any:
    """The scheduler's key for a workload: a TaskInstanceKey for tasks, a callback key for callbacks.

    Read from ``ti`` rather than ``ExecuteTask.key``, which Airflow 3.1 does not have.
    """
    if isinstance(workload, workloads.ExecuteTask):
        return workload.ti.key
    return workload.callback.key


def task_identity(ti: Any) -> WorkloadIdentity:
    """Identity of a task instance try; works for workload DTOs and database task instances alike."""
    return WorkloadIdentity(
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        run_id=ti.run_id,
        map_index=ti.map_index if ti.map_index is not None else -1,
        try_number=ti.try_number,
    )


def workload_spec(workload: Any) -> JobSpec:
    """The spec of a workload handed over by the scheduler: a task, or an executor callback."""
    if isinstance(workload, workloads.ExecuteTask):
        ti = workload.ti
        return JobSpec(
            identity=task_identity(ti),
            command=workload_command(workload),
            airflow_queue=ti.queue,
            executor_config=ti.executor_config,
            execution_timeout=execution_timeout(ti),
            priority_weight=ti.priority_weight,
            workload=workload,
        )
    data = workload.callback.data if isinstance(workload.callback.data, dict) else {}
    identity = WorkloadIdentity(
        dag_id=str(data.get("dag_id", "callback")), callback_id=str(workload.callback.id)
    )
    return JobSpec(
        identity=identity,
        command=workload_command(workload),
        airflow_queue=data.get("queue"),
        executor_config=None,
        workload=workload,
    )


def task_instance_spec(ti: Any) -> JobSpec:
    """The spec of a database task instance: enough for its job's name and queue (adoption)."""
    return JobSpec(
        identity=task_identity(ti),
        command=[],
        airflow_queue=ti.queue,
        executor_config=ti.executor_config,
    )


def task_spec(task: Any, identity: WorkloadIdentity, command: list[str]) -> JobSpec:
    """The spec of a task of a serialized DAG, for a try that need not exist (``render``)."""
    timeout = task.execution_timeout.total_seconds() if task.execution_timeout else None
    return JobSpec(
        identity=identity,
        command=command,
        airflow_queue=task.queue,
        executor_config=task.executor_config,
        execution_timeout=timeout,
        priority_weight=task.priority_weight,
    )
