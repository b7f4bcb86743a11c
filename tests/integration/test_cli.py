"""``airflow aws-batch-executor …`` against the local Batch: the real Airflow CLI for ``check``,
the command bodies in-process for ``jobs``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from airflow_batch_executor.cli import commands
from airflow_batch_executor.requests import task_specs as task_specs_module

from .helpers import describe, pump, python_command, queue, wait_until, workload


def airflow_cli(*args: str) -> subprocess.CompletedProcess:
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    env = {**os.environ, "AIRFLOW__CORE__EXECUTOR": "airflow_batch_executor.AwsBatchExecutor"}
    return subprocess.run(
        [airflow, "aws-batch-executor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_check_verifies_the_s3_workload_transport(batch_env, monkeypatch):
    s3 = batch_env.client("s3")
    s3.create_bucket(Bucket="cli-check-workloads")
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__WORKLOAD_TRANSPORT", "s3://cli-check-workloads/airflow")
    result = airflow_cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "[ok] workload transport: the scheduler can write and delete workload objects under " in result.stdout
    )
    assert s3.list_objects_v2(Bucket="cli-check-workloads").get("KeyCount") == 0

    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__WORKLOAD_TRANSPORT", "s3://missing-cli-bucket/airflow")
    result = airflow_cli("check")
    assert result.returncode == 1
    assert (
        "[FAILED] workload transport: bucket 'missing-cli-bucket'" in result.stdout
        and "Fix: " in result.stdout
    )


def test_check_reports_a_bad_option(batch_env, monkeypatch):
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__MAX_SUBMIT_JOB_ATTEMPTS", "many")
    result = airflow_cli("check")
    assert result.returncode == 1
    assert "[FAILED] configuration: [aws_batch_executor] max_submit_job_attempts is 'many'" in result.stdout


def test_jobs_lists_this_deployments_jobs_with_filters(make_executor, batch_env, monkeypatch, capsys):
    monkeypatch.setattr(task_specs_module, "workload_command", lambda w: python_command("print('x')"))
    executor = make_executor()
    queue(
        executor,
        workload("listed", dag_id="etl", run_id="r1", map_index=2),
        workload("other", dag_id="reports", run_id="r1"),
    )
    pump(executor, lambda ev: len([e for e in ev if e[1] == "success"]) == 2)
    batch_env.client("batch").submit_job(
        jobName="not-airflow", jobQueue=batch_env.job_queue, jobDefinition=batch_env.job_definition
    )
    capsys.readouterr()

    commands.jobs(argparse.Namespace(job_queue=None, state=None, dag_id="etl", limit=100, team=None))
    out = capsys.readouterr().out
    [row] = [line for line in out.splitlines() if "listed" in line]
    assert "etl" in row and "  2  " in row and "r1" in row
    assert "reports" not in out and "not-airflow" not in out
    assert out.strip().endswith(f"1 job(s) in {batch_env.job_queue}")

    commands.jobs(argparse.Namespace(job_queue=None, state="FAILED", dag_id=None, limit=100, team=None))
    assert "0 job(s)" in capsys.readouterr().out


def test_prune_definitions_is_a_dry_run_by_default_through_the_real_cli(batch_env):
    client = batch_env.client("batch")
    [local] = client.describe_job_definitions(jobDefinitionName=batch_env.job_definition, status="ACTIVE")[
        "jobDefinitions"
    ]
    arn = client.register_job_definition(
        jobDefinitionName="cli-derived-0123456789ab",
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties=local["containerProperties"],
        tags={"airflow-batch-executor.managed": "true", "airflow-batch-executor.registered-at": "0"},
    )["jobDefinitionArn"]

    result = airflow_cli("prune-definitions", "--older-than", "30d")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "would deregister  cli-derived-0123456789ab:1" in result.stdout
    assert "1 derived job definition(s) would be deregistered; run again with --yes" in result.stdout
    [still] = client.describe_job_definitions(jobDefinitions=[arn])["jobDefinitions"]
    assert still["status"] == "ACTIVE"


def test_jobs_shows_each_waiting_jobs_place_in_line_and_its_reason(
    make_executor, batch_env, monkeypatch, capsys
):
    monkeypatch.setattr(task_specs_module, "workload_command", lambda w: python_command("print('x')"))
    reason = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - no capacity"
    batch_env.faults.block_queue(batch_env.job_queue, reason)
    executor = make_executor()
    first, second = (
        workload("first", dag_id="lined", run_id="r1"),
        workload("second", dag_id="lined", run_id="r1"),
    )
    queue(executor, first)
    pump(executor, lambda ev: any(state == "running" for _, state, _ in ev))
    queue(executor, second)
    pump(executor, lambda ev: any(key == second.ti.key and state == "running" for key, state, _ in ev))
    ids = [executor.jobs.tracker.for_key(item.ti.key).job_id for item in (first, second)]
    wait_until(lambda: all(describe(batch_env, job_id)["status"] == "RUNNABLE" for job_id in ids))
    capsys.readouterr()

    commands.jobs(argparse.Namespace(job_queue=None, state=None, dag_id="lined", limit=100, team=None))
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:-1]}
    assert "POSITION" in out.splitlines()[0]
    assert "  1 of 2  " in rows[ids[0]] and "  2 of 2  " in rows[ids[1]]
    assert all(row.rstrip().endswith(reason) for row in rows.values())
    batch_env.faults.unblock_queue(batch_env.job_queue)
