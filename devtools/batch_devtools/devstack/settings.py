"""The environment every component of a dev stack runs with.

Everything is set through environment variables and nothing is inherited from the caller's
Airflow or AWS configuration: a test process (or a developer's shell) may carry its own
``AIRFLOW__*`` settings, e.g. unit-test mode or another database, that must not leak in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

EXECUTOR = "airflow_batch_executor.AwsBatchExecutor"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
_INHERITED_PREFIXES = ("AIRFLOW_", "AWS_", "_AIRFLOW", "PYTHONSTARTUP")


@dataclass(frozen=True)
class Timing:
    """Intervals that make a stack react in seconds; the defaults suit tests on 2 cores."""

    scheduler_heartbeat_sec: int = 1
    scheduler_health_check_threshold: int = 6
    orphaned_tasks_check_interval: float = 2.0
    scheduler_idle_sleep_time: float = 0.2
    dag_refresh_interval: int = 2
    min_file_process_interval: int = 60
    status_poll_interval: float = 0.5
    extra: Mapping[str, str] = field(default_factory=dict)
    """Any further ``AIRFLOW__…`` overrides, applied last."""


def clean_base_environment() -> dict[str, str]:
    """The caller's environment without its Airflow and AWS settings."""
    return {name: value for name, value in os.environ.items() if not name.startswith(_INHERITED_PREFIXES)}


def airflow_environment(
    *,
    home: Path,
    dags_folder: Path,
    database_url: str,
    api_port: int,
    jwt_secret: str,
    timing: Timing,
) -> dict[str, str]:
    """Settings shared by every Airflow process, including the tasks the local Batch runs."""
    env = clean_base_environment()
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": EXECUTOR,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
            "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
            "AIRFLOW__API__SECRET_KEY": jwt_secret,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": str(timing.scheduler_heartbeat_sec),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": str(
                timing.scheduler_health_check_threshold
            ),
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": str(timing.orphaned_tasks_check_interval),
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": str(timing.scheduler_idle_sleep_time),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(timing.dag_refresh_interval),
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(timing.min_file_process_interval),
            "AIRFLOW__AWS_BATCH_EXECUTOR__STATUS_POLL_INTERVAL": str(timing.status_poll_interval),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(timing.extra)
    return env
