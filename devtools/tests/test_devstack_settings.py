"""The settings a multi-team dev stack hands Airflow: the order Airflow's executor loader demands, a DAG
bundle per team, and a team's executor configured under the team's own variables only."""

from __future__ import annotations

import json
from pathlib import Path

from batch_devtools.devstack.settings import (
    Timing,
    airflow_environment,
    multi_team_environment,
    team_executor_environment,
)
from batch_devtools.local_batch.environment import TeamResources

EXECUTOR = "airflow_batch_executor.AwsBatchExecutor"


def test_the_global_executor_comes_first_and_each_team_gets_a_bundle_of_its_own():
    env = multi_team_environment(Path("/dags/global"), {"team_a": Path("/dags/a"), "team_b": Path("/dags/b")})

    assert env["AIRFLOW__CORE__MULTI_TEAM"] == "True"
    assert env["AIRFLOW__CORE__EXECUTOR"] == f"{EXECUTOR};team_a={EXECUTOR};team_b={EXECUTOR}"
    bundles = {b["name"]: b for b in json.loads(env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])}
    assert bundles["dags-folder"]["kwargs"] == {"path": "/dags/global"}
    assert "team_name" not in bundles["dags-folder"]
    assert (bundles["team_a-dags"]["team_name"], bundles["team_a-dags"]["kwargs"]) == (
        "team_a",
        {"path": "/dags/a"},
    )
    assert bundles["team_b-dags"]["team_name"] == "team_b"


def test_a_teams_executor_is_configured_under_its_own_variables_only():
    resources = TeamResources(team="team_a", job_queue="queue-a", job_definition="definition-a")

    env = team_executor_environment(resources, Timing(status_poll_interval=0.25))

    assert env == {
        "AIRFLOW__TEAM_A___AWS_BATCH_EXECUTOR__JOB_QUEUE": "queue-a",
        "AIRFLOW__TEAM_A___AWS_BATCH_EXECUTOR__JOB_DEFINITION": "definition-a",
        "AIRFLOW__TEAM_A___AWS_BATCH_EXECUTOR__STATUS_POLL_INTERVAL": "0.25",
    }


def test_a_stack_reconciles_at_the_executors_default_unless_its_timing_names_an_interval():
    def environment(timing: Timing) -> dict[str, str]:
        return airflow_environment(
            home=Path("/home"),
            dags_folder=Path("/dags"),
            database_url="sqlite:///x.db",
            api_port=8080,
            jwt_secret="s",
            timing=timing,
        )

    variable = "AIRFLOW__AWS_BATCH_EXECUTOR__STATUS_RECONCILE_INTERVAL"
    assert variable not in environment(Timing())
    assert environment(Timing(status_reconcile_interval=20))[variable] == "20"
