"""The environment every component of a dev stack runs with.

Everything is set through environment variables and nothing is inherited from the caller's
Airflow or AWS configuration: a test process (or a developer's shell) may carry its own
``AIRFLOW__*`` settings, e.g. unit-test mode or another database, that must not leak in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from batch_devtools.local_batch.environment import TeamResources

EXECUTOR = "airflow_batch_executor.AwsBatchExecutor"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
LOCAL_DAG_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
GLOBAL_BUNDLE = "dags-folder"
_INHERITED_PREFIXES = ("AIRFLOW_", "AWS_", "_AIRFLOW", "PYTHONSTARTUP")


@dataclass(frozen=True)
class Timing:
    """Intervals that make a stack react in seconds; the defaults suit tests on 2 cores."""

    scheduler_heartbeat_sec: int = 1
    scheduler_health_check_threshold: int = 6
    orphaned_tasks_check_interval: float = 2.0
    scheduler_idle_sleep_time: float = 0.5
    """An idle scheduler used 6 CPU-seconds a minute looping every 0.2 s, and 2.7 at 0.5 s (one stack
    on 2 cores); a task waits at most this much longer to be scheduled."""
    dag_refresh_interval: int = 2
    min_file_process_interval: int = 3600
    """Tests and the demo never edit a DAG file, and re-parsing every file each minute cost a stack
    about 12 CPU-seconds a minute; ``up`` (a person editing DAGs) asks for ``EDITING_DAGS``."""
    status_poll_interval: float = 0.5
    status_reconcile_interval: float | None = None
    """With status events: seconds after a job's last event before it is described (None: the
    executor's default, 120 s)."""
    extra: Mapping[str, str] = field(default_factory=dict)
    """Any further ``AIRFLOW__…`` overrides, applied last."""


EDITING_DAGS = Timing(min_file_process_interval=10)
"""For a stack a person works with: an edited DAG file is parsed again within seconds."""


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
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
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
    if timing.status_reconcile_interval is not None:
        env["AIRFLOW__AWS_BATCH_EXECUTOR__STATUS_RECONCILE_INTERVAL"] = str(timing.status_reconcile_interval)
    env.update(timing.extra)
    return env


def team_bundle(team: str) -> str:
    """The name of the DAG bundle that holds ``team``'s DAGs."""
    return f"{team}-dags"


def multi_team_environment(dags_folder: Path, teams: Mapping[str, Path]) -> dict[str, str]:
    """Airflow's multi-team mode (3.2+): one executor and one DAG bundle per team, plus global ones.

    A DAG belongs to a team through its bundle, and the scheduler sends a team's tasks to the team's
    executor, so each team gets a bundle of its own; ``dags_folder`` stays the global bundle. The local
    Batch's jobs need the bundle list too: a job finds its DAG file through the bundle its workload names.
    """
    executors = ";".join([EXECUTOR, *(f"{team}={EXECUTOR}" for team in teams)])
    bundles = [
        {"name": GLOBAL_BUNDLE, "classpath": LOCAL_DAG_BUNDLE, "kwargs": {"path": str(dags_folder)}},
        *(
            {
                "name": team_bundle(team),
                "classpath": LOCAL_DAG_BUNDLE,
                "kwargs": {"path": str(folder)},
                "team_name": team,
            }
            for team, folder in teams.items()
        ),
    ]
    return {
        "AIRFLOW__CORE__MULTI_TEAM": "True",
        "AIRFLOW__CORE__EXECUTOR": executors,
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
    }


def team_executor_environment(resources: TeamResources, timing: Timing) -> dict[str, str]:
    """One team's executor options: its own queue and definition, and the stack's poll interval.

    A team's executor reads nothing from the global ``[aws_batch_executor]`` section, so whatever the
    global executor gets from the stack, a team must be given under its own variables.
    """
    return {
        **resources.settings(),
        resources.variable("status_poll_interval"): str(timing.status_poll_interval),
    }
