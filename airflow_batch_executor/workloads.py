"""What the executor reads from Airflow's workloads and task instances, in one place.

Keeping the Airflow-specific shapes here lets request building, naming and adoption work on plain
values, and gives one spot to adjust when Airflow's workload models change.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from airflow.executors import workloads

from airflow_batch_executor.naming import WorkloadIdentity
from airflow_batch_executor.request import JobSpec

if TYPE_CHECKING:
    from airflow.models.taskinstance import TaskInstance

EXECUTE_WORKLOAD_MODULE = "airflow.sdk.execution_time.execute_workload"

log = logging.getLogger(__name__)


@lru_cache(maxsize=256)
def _execution_timeouts(dag_version_id: Any) -> dict[str, float]:
    """Task id → ``execution_timeout`` seconds for one DAG version (immutable, so cached for good).

    A version whose DAG cannot be read is cached as having no timeouts: its tasks still run, without
    a Batch-side timeout, which is better than failing them for a missing safety net (or querying
    again for every task of that version).
    """
    from sqlalchemy import select

    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session

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
    except Exception as error:
        log.warning("Could not read the execution_timeout of DAG version %s: %s", dag_version_id, error)
        return {}


def execution_timeout(ti: Any) -> float | None:
    """The task's ``execution_timeout`` in seconds, read from its serialized DAG version."""
    return _execution_timeouts(ti.dag_version_id).get(ti.task_id)


def workload_key(workload: Any) -> Any:
    """The scheduler's key for a workload: a TaskInstanceKey for tasks, a callback key for callbacks."""
    if isinstance(workload, workloads.ExecuteTask):
        return workload.ti.key
    return workload.callback.key


def workload_command(workload: Any) -> list[str]:
    """The Task SDK command that runs this workload inside the job's container."""
    return ["python", "-m", EXECUTE_WORKLOAD_MODULE, "--json-string", workload.model_dump_json()]


def task_identity(ti: Any) -> WorkloadIdentity:
    """Identity of a task instance try; works for workload DTOs and database task instances alike."""
    return WorkloadIdentity(
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        run_id=ti.run_id,
        map_index=ti.map_index if ti.map_index is not None else -1,
        try_number=ti.try_number,
    )


def job_spec(workload: Any) -> JobSpec:
    """Everything request building needs from a workload handed over by the scheduler."""
    if isinstance(workload, workloads.ExecuteTask):
        ti = workload.ti
        return JobSpec(
            identity=task_identity(ti),
            command=workload_command(workload),
            airflow_queue=ti.queue,
            executor_config=ti.executor_config,
            execution_timeout=execution_timeout(ti),
        )
    data = workload.callback.data if isinstance(workload.callback.data, dict) else {}
    return JobSpec(
        identity=WorkloadIdentity(dag_id=str(data.get("dag_id", "callback")), callback_id=str(workload.callback.id)),
        command=workload_command(workload),
        airflow_queue=data.get("queue"),
        executor_config=None,
    )


def routing_spec(ti: TaskInstance) -> JobSpec:
    """A spec for a database task instance, enough to know its job's name and queue during adoption."""
    return JobSpec(
        identity=task_identity(ti),
        command=[],
        airflow_queue=ti.queue,
        executor_config=ti.executor_config,
    )
