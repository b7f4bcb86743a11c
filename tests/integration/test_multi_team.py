"""Several teams' executors in one scheduler process (Airflow's multi-team mode), through the local
Batch: each reads only its team's options, submits to its team's queue and definition, tags its jobs
with its team, and shares nothing mutable with the others."""

from __future__ import annotations

import pytest

from airflow_batch_executor import metrics
from airflow_batch_executor.errors import HealthCheckError, OptionError
from airflow_batch_executor.requests import task_specs as task_specs_module

from .helpers import (
    Recorder,
    configure_team,
    final_states,
    finished,
    pump,
    python_command,
    queue,
    workload,
)


@pytest.fixture(scope="module")
def team_resources(local_batch):
    """team_a and team_b, each with its own job queue and job definition in the local Batch."""
    return {team: local_batch.add_team(team) for team in ("team_a", "team_b")}


@pytest.fixture
def teams(batch_env, team_resources, monkeypatch):
    """Both teams' executors configured on their own resources (Airflow's team variables)."""
    monkeypatch.setattr(task_specs_module, "workload_command", lambda w: python_command("print('team')"))
    monkeypatch.setenv("AIRFLOW__CORE__MULTI_TEAM", "True")
    for team, resources in team_resources.items():
        configure_team(
            monkeypatch,
            team,
            batch_env.settings_env(),
            status_poll_interval="0.1",
            job_queue=resources.job_queue,
            job_definition=resources.job_definition,
        )
    return team_resources


def test_each_team_submits_to_its_own_queue_and_definition_with_its_tag(make_executor, batch_env, teams):
    executors = {team: make_executor(team=team) for team in (None, "team_a", "team_b")}
    items = {team: workload("work", dag_id=f"dag_{team or 'global'}", run_id="teams") for team in executors}
    for team, executor in executors.items():
        queue(executor, items[team])
    for team, executor in executors.items():
        assert final_states(pump(executor, finished(items[team].ti.key))) == {items[team].ti.key: "success"}

    requests = {r["tags"]["airflow.dag_id"]: r for r in batch_env.submitted_requests()}
    assert len(requests) == 3, "each executor submitted its own task only"
    for team in ("team_a", "team_b"):
        request = requests[f"dag_{team}"]
        assert (request["jobQueue"], request["jobDefinition"]) == (
            teams[team].job_queue,
            teams[team].job_definition,
        )
        assert request["tags"]["airflow.team"] == team
    assert requests["dag_global"]["jobQueue"] == batch_env.job_queue
    assert "airflow.team" not in requests["dag_global"]["tags"]


def test_teams_share_no_mutable_state_and_measure_themselves(make_executor, batch_env, teams, monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(metrics, "Stats", recorder)
    monkeypatch.setenv("AIRFLOW__TEAM_A___AWS_BATCH_EXECUTOR__SUBMIT_RATE_LIMIT", "7")
    a, b = make_executor(team="team_a"), make_executor(team="team_b")
    assert a.jobs is not None and b.jobs is not None
    rates = (a.jobs._submitter.limiter.rate, b.jobs._submitter.limiter.rate)
    assert rates == (7.0, 40.0), "each team has its own rate limit"
    for left, right in ((a.gateway, b.gateway), (a.factory, b.factory), (a.timeouts, b.timeouts)):
        assert left is not right
    assert a.jobs.tracker is not b.jobs.tracker
    item = workload("measured", dag_id="dag_team_a", run_id="team-metrics")
    queue(a, item)
    pump(a, finished(item.ti.key))
    assert "aws_batch_executor.team_a.submit.ok" in recorder.names()
    assert not [name for name in recorder.names() if name.startswith("aws_batch_executor.team_b.submit")]


def test_a_teams_missing_option_stops_start_up_naming_the_team(make_executor, batch_env, teams, monkeypatch):
    monkeypatch.delenv("AIRFLOW__TEAM_B___AWS_BATCH_EXECUTOR__JOB_QUEUE")
    make_executor(team="team_a")
    with pytest.raises(OptionError) as raised:
        make_executor(team="team_b")
    assert "job_queue of team 'team_b' is not set" in str(raised.value)
    assert "AIRFLOW__TEAM_B___AWS_BATCH_EXECUTOR__JOB_QUEUE" in str(raised.value)


def test_a_teams_unhealthy_settings_stop_start_up_naming_the_team(
    make_executor, batch_env, teams, monkeypatch
):
    monkeypatch.setenv("AIRFLOW__TEAM_B___AWS_BATCH_EXECUTOR__JOB_QUEUE", "no-such-queue")
    with pytest.raises(HealthCheckError) as raised:
        make_executor(team="team_b")
    message = str(raised.value)
    assert "AwsBatchExecutor of team 'team_b' cannot start" in message
    assert "job queue 'no-such-queue' does not exist" in message
    assert "AIRFLOW__TEAM_B___AWS_BATCH_EXECUTOR__JOB_QUEUE" in message


def test_the_cli_of_a_team_lists_its_jobs_and_options_only(
    make_executor, batch_env, teams, monkeypatch, capsys
):
    import argparse

    from airflow_batch_executor.cli import commands

    monkeypatch.setenv("AIRFLOW__TEAM_A___AWS_BATCH_EXECUTOR__JOB_QUEUE", batch_env.job_queue)
    shared = {
        team: workload("mine", dag_id=f"dag_{team or 'global'}", run_id="cli") for team in (None, "team_a")
    }
    for team, item in shared.items():
        executor = make_executor(team=team)
        queue(executor, item)
        pump(executor, finished(item.ti.key))
    capsys.readouterr()

    def jobs(team):
        commands.jobs(
            argparse.Namespace(job_queue=None, state=None, dag_id=None, limit=100, team=team, verbose=False)
        )
        return capsys.readouterr().out

    team_jobs, global_jobs = jobs("team_a"), jobs(None)
    assert "dag_team_a" in team_jobs and "dag_global" not in team_jobs
    assert team_jobs.strip().endswith(f"job(s) of team 'team_a' in {batch_env.job_queue}")
    assert "dag_global" in global_jobs and "dag_team_a" not in global_jobs

    commands.options(argparse.Namespace(team="team_a", verbose=False))
    listing = capsys.readouterr().out
    assert "Environment variable: AIRFLOW__TEAM_A___AWS_BATCH_EXECUTOR__JOB_QUEUE" in listing
    assert f"Current value: {batch_env.job_queue}" in listing


def test_a_team_uses_its_own_connection(make_executor, batch_env, teams, monkeypatch):
    """A connection only team_a may use (``AIRFLOW_CONN__TEAM_A___<ID>``) is what its executor uses;
    with AWS_ENDPOINT_URL gone, nothing but that connection leads to the local Batch."""
    import json

    from airflow_batch_executor.airflow_side.compat import teams_enabled

    if not teams_enabled():
        pytest.skip("teams own connections since Airflow 3.2")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    connection = {
        "conn_type": "aws",
        "extra": {"region_name": batch_env.region, "endpoint_url": batch_env.endpoint_url},
    }
    monkeypatch.setenv("AIRFLOW_CONN__TEAM_A___TEAM_A_AWS", json.dumps(connection))
    monkeypatch.setenv("AIRFLOW__TEAM_A___AWS_BATCH_EXECUTOR__CONN_ID", "team_a_aws")

    executor = make_executor(team="team_a")
    item = workload("own_connection", dag_id="dag_team_a", run_id="team-connection")
    queue(executor, item)
    assert final_states(pump(executor, finished(item.ti.key))) == {item.ti.key: "success"}
    [request] = [
        r for r in batch_env.submitted_requests() if r["tags"]["airflow.task_id"] == "own_connection"
    ]
    assert request["jobQueue"] == teams["team_a"].job_queue


def test_each_teams_workloads_go_under_its_own_prefix(make_executor, batch_env, teams, s3_mode, monkeypatch):
    """So that each team's job role can be limited to its own workloads (and tokens)."""
    shared = f"s3://airflow-local-workloads/{s3_mode.prefix}"
    for team in ("team_a", "team_b"):
        monkeypatch.setenv(f"AIRFLOW__{team.upper()}___AWS_BATCH_EXECUTOR__WORKLOAD_TRANSPORT", shared)
    executors = {team: make_executor(team=team) for team in (None, "team_a", "team_b")}
    items = {
        team: workload("work", dag_id=f"dag_{team or 'global'}", run_id="prefixes") for team in executors
    }
    for team, executor in executors.items():
        queue(executor, items[team])
    for team, executor in executors.items():
        assert final_states(pump(executor, finished(items[team].ti.key))) == {items[team].ti.key: "success"}
    uris = {
        r["tags"]["airflow.dag_id"]: r["containerOverrides"]["command"][-1]
        for r in batch_env.submitted_requests()
    }
    assert uris["dag_global"].startswith(f"{shared}/global/")
    assert uris["dag_team_a"].startswith(f"{shared}/teams/team_a/")
    assert uris["dag_team_b"].startswith(f"{shared}/teams/team_b/")
