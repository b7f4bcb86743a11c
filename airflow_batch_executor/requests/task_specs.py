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

from airflow_batch_executor.job_contract import CALLBACK_RUNNER_MODULE, TASK_SDK_MODULE, runner_command
from airflow_batch_executor.requests.naming import WorkloadIdentity

TASK, CALLBACK, CONNECTION_TEST = "ExecuteTask", "ExecuteCallback", "TestConnection"
"""The workload kinds an executor receives, by their ``type`` field (the same in every Airflow 3)."""

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
    return runner_command(TASK_SDK_MODULE, workload_json)


def workload_command(workload: Any) -> list[str]:
    """The job's command for a workload handed over by the scheduler: the Task SDK for tasks and
    connection tests, the callback runner for executor callbacks (which the Task SDK's entry point
    cannot report; see :mod:`~airflow_batch_executor.in_job.callback_runner`)."""
    if workload.type == CALLBACK:
        return runner_command(CALLBACK_RUNNER_MODULE, workload.model_dump_json())
    return task_sdk_command(workload.model_dump_json())


def _read_execution_timeouts(dag_version_id: Any) -> dict[str, float]:
    """Task id → ``execution_timeout`` seconds for one DAG version.

    A version whose DAG cannot be read counts as having no timeouts: its tasks still run, without a
    Batch-side timeout, which is better than failing them for a missing safety net (or querying
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


class ExecutionTimeouts:
    """Each task's ``execution_timeout``, read from its serialized DAG version once per version.

    A DAG version never changes, so its timeouts are kept (the newest 256 versions). The cache
    belongs to one executor, not to the module: the executors of several teams in one scheduler
    share no mutable state.
    """

    def __init__(self, versions: int = 256) -> None:
        self._read = lru_cache(maxsize=versions)(_read_execution_timeouts)

    def of(self, ti: Any) -> float | None:
        return self._read(ti.dag_version_id).get(ti.task_id)


def workload_key(workload: Any) -> Any:
    """The scheduler's key for a workload: a TaskInstanceKey for tasks, a callback or connection-test
    key for the others.

    Read from ``ti`` rather than ``ExecuteTask.key``, which Airflow 3.1 does not have.
    """
    if workload.type == TASK:
        return workload.ti.key
    if workload.type == CALLBACK:
        return workload.callback.key
    return workload.key


def task_identity(ti: Any) -> WorkloadIdentity:
    """Identity of a task instance try; works for workload DTOs and database task instances alike."""
    return WorkloadIdentity(
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        run_id=ti.run_id,
        map_index=ti.map_index if ti.map_index is not None else -1,
        try_number=ti.try_number,
    )


def workload_spec(workload: Any, timeouts: ExecutionTimeouts) -> JobSpec:
    """The spec of a workload handed over by the scheduler: a task, an executor callback, or a
    connection test (Airflow 3.3), which runs in a job so it is tried from where tasks run."""
    if workload.type == TASK:
        ti = workload.ti
        return JobSpec(
            identity=task_identity(ti),
            command=workload_command(workload),
            airflow_queue=ti.queue,
            executor_config=ti.executor_config,
            execution_timeout=timeouts.of(ti),
            priority_weight=ti.priority_weight,
            workload=workload,
        )
    if workload.type == CONNECTION_TEST:
        identity = WorkloadIdentity(
            dag_id="",
            connection_id=workload.connection_id,
            connection_test_id=str(workload.connection_test_id),
        )
        return JobSpec(
            identity=identity,
            command=workload_command(workload),
            airflow_queue=workload.queue,
            executor_config=None,
            execution_timeout=float(workload.timeout),
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
