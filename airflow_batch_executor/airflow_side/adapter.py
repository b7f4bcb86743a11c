"""What the executor does to and through Airflow: sign tokens, read teams, write a row, freeze the heap.

These reach into Airflow's models, configuration and database in the scheduler's or api-server's
process; version differences they depend on are :mod:`~airflow_batch_executor.airflow_side.compat`'s.
"""

from __future__ import annotations

import functools
import gc
from typing import Any

from airflow_batch_executor.airflow_side.compat import teams_enabled


@functools.cache
def freeze_startup_heap() -> None:
    """Exclude everything allocated before the executor started from Python's full collections.

    A scheduler process holds millions of long-lived objects (Airflow, providers, DAG models).
    Every full garbage collection scans them all, about 0.2 s each, and thousands of queued
    workloads trigger such collections again and again; one landing in a heartbeat stalls the
    scheduler. Freezing the start-up heap (as Airflow's DAG processor manager does) leaves the
    collections only the objects created since.

    Once per process: a frozen object is never freed by a collection, so each later freeze would keep
    for good whatever was garbage-to-be at that moment (in a process that starts many executors, such
    as a test session, gigabytes). No collection first: one at start-up made a real scheduler lose
    log lines it wrote later (seen in the SIGTERM end-to-end test; the cause is in Airflow's logging).
    """
    gc.freeze()


def with_fresh_token(workload: Any, generator: Any) -> Any:
    """A copy of the workload with a newly signed token, for the same task instance or callback."""
    return workload.model_copy(
        update={"token": type(workload).generate_token(token_subject(workload), generator)}
    )


def token_subject(workload: Any) -> str:
    """Whom a workload's token is for: its task instance, callback or connection test."""
    if hasattr(workload, "ti"):
        return str(workload.ti.id)
    if hasattr(workload, "callback"):
        return str(workload.callback.id)
    return str(workload.connection_test_id)


def fail_connection_test(test_id: str, reason: str) -> bool:
    """Mark a connection test FAILED with ``reason``, unless it already has an outcome.

    The test reports its own outcome through the execution API, as under Airflow's own executors;
    this covers the job that never ran it (an image that cannot be pulled, a job that waited for
    capacity past its time), which would otherwise wait for the scheduler's reaper and then say only
    that the test "never started". Returns whether the row was changed.
    """
    from uuid import UUID

    from airflow.models.connection_test import ACTIVE_STATES, ConnectionTestRequest, ConnectionTestState
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        result = session.execute(
            update(ConnectionTestRequest)
            .where(ConnectionTestRequest.id == UUID(test_id))
            .where(ConnectionTestRequest.state.in_([state.value for state in ACTIVE_STATES]))
            .values(state=ConnectionTestState.FAILED.value, result_message=reason[:2000])
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)


def team_connection(conn_id: str, team: str) -> Any:
    """The connection ``conn_id`` as ``team`` sees it: its own first, else the deployment's (3.2+).

    Airflow refuses a team's lookup outside multi-team mode, where no connection can belong to a team.
    """
    from airflow.models.connection import Connection

    if not teams_enabled():
        return Connection.get_connection_from_secrets(conn_id)
    return Connection.get_connection_from_secrets(conn_id, team_name=team)


def team_of_dag(dag_id: str) -> str | None:
    """The team owning a DAG (through its bundle) in multi-team mode; None otherwise.

    The api-server loads executors without a team, so ``get_task_log`` finds the team of the task
    itself, to read its job's log with the team's own connection and region. Airflow 3.1 has no teams.
    """
    from airflow.models.dag import DagModel

    return DagModel.get_team_name(dag_id) if teams_enabled() else None


def executor_conf(team: str | None) -> Any:
    """Airflow's view of the configuration for one team's executor (all of it for team None)."""
    from airflow.executors.base_executor import ExecutorConf

    return ExecutorConf(team)
