"""What the real ``airflow aws-batch-executor`` CLI prints, against the local Batch.

stdout carries only what a command means to say (``check``'s results, help text); the log messages of
Airflow and the AWS libraries go to stderr, and only their warnings and errors unless ``--verbose``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def airflow_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    """The CLI as a user runs it: outside unit-test mode, whose start-up log line Airflow prints first."""
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    env = {
        **os.environ,
        "AIRFLOW__CORE__EXECUTOR": "airflow_batch_executor.AwsBatchExecutor",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        **env,
    }
    command = [airflow, "aws-batch-executor", *args]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=120, env=env)


def result_lines(result: subprocess.CompletedProcess) -> list[str]:
    """stdout's lines, asserting that each is a check result."""
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, result.stdout + result.stderr
    strays = [line for line in lines if not line.startswith(("[ok] ", "[FAILED] "))]
    assert not strays, f"stdout holds more than check results: {strays}\n--- stderr\n{result.stderr}"
    return lines


def one_line(text: str) -> str:
    """Help text with its wrapping undone (rich wraps to the terminal's width)."""
    return " ".join(text.split())


def test_check_names_each_check_and_prints_only_its_results(batch_env):
    result = airflow_cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result_lines(result)
    assert lines[0].startswith("[ok] configuration")
    checks = ("configuration", "AWS credentials", "job queue", "job definition", "Fargate size")
    for check in checks:
        assert any(line.startswith(f"[ok] {check}") for line in lines), f"{check}: {lines}"
    assert "Found credentials" not in result.stdout
    assert "Found credentials" not in result.stderr, "botocore's INFO lines need --verbose"


def test_a_failing_check_gives_the_fix_and_prints_only_its_results(batch_env):
    result = airflow_cli("check", AIRFLOW__AWS_BATCH_EXECUTOR__JOB_QUEUE="missing-queue")
    assert result.returncode == 1, result.stdout + result.stderr
    failed = "[FAILED] job queue: job queue 'missing-queue' does not exist. Fix: create the queue"
    assert any(line.startswith(failed) for line in result_lines(result)), result.stdout
    assert "Found credentials" not in result.stdout


def test_library_warnings_go_to_stderr(batch_env):
    # The AWS hook warns through structlog (not the logging module) when the connection is missing;
    # boto3 then finds the local Batch through AWS_ENDPOINT_URL.
    result = airflow_cli(
        "check", AIRFLOW__AWS_BATCH_EXECUTOR__CONN_ID="no_such_conn", AWS_ENDPOINT_URL=batch_env.endpoint_url
    )
    assert result.returncode == 0, result.stdout + result.stderr
    result_lines(result)
    assert "no_such_conn" in result.stderr
    # Airflow 3.1 imports alembic while its CLI starts, before any command runs, and alembic logs the
    # set-up of its plugins at info then: out of the command's reach, and on stderr already.
    info = [line for line in result.stderr.lower().splitlines() if "[info" in line]
    assert [line for line in info if "[alembic.runtime.plugins]" not in line] == []
    assert "Found credentials" not in result.stderr


@pytest.mark.parametrize("flag", ["--verbose", "-v"])
def test_verbose_shows_library_info_on_stderr(batch_env, flag):
    result = airflow_cli("check", flag)
    assert result.returncode == 0, result.stdout + result.stderr
    result_lines(result)
    assert "Found credentials" not in result.stdout
    assert "Found credentials in environment variables" in result.stderr


@pytest.mark.parametrize(
    "command, text",
    [
        ("options", "List every [aws_batch_executor] option with its description, default and value"),
        ("jobs", "Batch job queue to list (default: [aws_batch_executor] job_queue)"),
    ],
)
def test_help_shows_the_section_name_literally(command, text):
    result = airflow_cli(command, "--help")
    assert result.returncode == 0, result.stdout + result.stderr
    assert text in one_line(result.stdout)
    assert "--verbose" in result.stdout


def test_group_help_shows_the_section_name_literally():
    result = airflow_cli("--help")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "List every [aws_batch_executor] option" in one_line(result.stdout)
