"""A plain, non-editable ``pip install .`` into a clean virtualenv registers the provider."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DESIGN_OPTIONS = (
    "region_name", "job_queue", "job_definition", "job_name", "conn_id",
    "submit_job_kwargs", "max_submit_job_attempts", "check_health_on_startup",
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    uv = shutil.which("uv", path=os.path.dirname(sys.executable)) or shutil.which("uv")
    assert uv, "uv is installed by scripts/bootstrap"
    work = tmp_path_factory.mktemp("install")
    wheel_dir, venv = work / "dist", work / "venv"
    subprocess.run([uv, "build", "--wheel", "-q", "-o", str(wheel_dir), str(ROOT)], check=True, timeout=300)
    [wheel] = wheel_dir.glob("*.whl")
    subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True, timeout=120)
    subprocess.run([uv, "pip", "install", "-q", "-p", str(venv / "bin" / "python"), str(wheel)], check=True, timeout=600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    env.update(AIRFLOW_HOME=str(work / "airflow-home"), PATH=f"{venv / 'bin'}:{env['PATH']}")
    return {"python": str(venv / "bin" / "python"), "airflow": str(venv / "bin" / "airflow"), **{f"env:{k}": v for k, v in env.items()}}


def run(installed: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {k[4:]: v for k, v in installed.items() if k.startswith("env:")}
    return subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=180, cwd="/")


def test_the_package_is_importable_from_site_packages(installed):
    result = run(installed, installed["python"], "-c", "import airflow_batch_executor as m; print(m.__file__); print(m.AwsBatchExecutor.__name__)")
    assert result.returncode == 0, result.stderr
    assert "site-packages" in result.stdout and "AwsBatchExecutor" in result.stdout


def test_config_list_documents_the_options(installed):
    result = run(installed, installed["airflow"], "config", "list", "--section", "aws_batch_executor", "--include-descriptions", "--defaults")
    assert result.returncode == 0, result.stderr
    for option in DESIGN_OPTIONS:
        assert f"{option} =" in result.stdout, option


def test_the_provider_registers_every_option_with_description_and_default(installed):
    code = (
        "import json; from airflow.providers_manager import ProvidersManager; "
        "print(json.dumps(dict(ProvidersManager().provider_configs)['airflow-batch-executor']))"
    )
    result = run(installed, installed["python"], "-c", code)
    assert result.returncode == 0, result.stderr
    registered = json.loads(result.stdout.strip().splitlines()[-1])["aws_batch_executor"]["options"]
    shipped = yaml.safe_load((ROOT / "config_templates" / "config.yml").read_text())["aws_batch_executor"]["options"]
    assert registered == shipped


def test_the_cli_group_is_available(installed):
    result = run(installed, installed["airflow"], "aws-batch-executor", "--help")
    assert result.returncode == 0, result.stderr
    for command in ("check", "options", "jobs", "render"):
        assert command in result.stdout
    assert "missing 'cli' section" not in result.stdout + result.stderr


def test_options_command_lists_every_option_with_its_value(installed):
    env_run = dict(installed)
    env_run["env:AIRFLOW__AWS_BATCH_EXECUTOR__SUBMIT_RATE_LIMIT"] = "25"
    result = run(env_run, installed["airflow"], "aws-batch-executor", "options")
    assert result.returncode == 0, result.stderr
    shipped = yaml.safe_load((ROOT / "config_templates" / "config.yml").read_text())["aws_batch_executor"]["options"]
    for name in shipped:
        assert f"{name} (" in result.stdout and f"AIRFLOW__AWS_BATCH_EXECUTOR__{name.upper()}" in result.stdout
    assert "submit_rate_limit (float, default: 40)" in result.stdout
    assert "Current value: 25" in result.stdout


def test_console_script_runs_the_local_batch_tools(installed):
    script = str(Path(installed["python"]).parent / "airflow-batch-executor")
    usage = run(installed, script, "--help")
    assert usage.returncode == 0 and "local-batch" in usage.stdout and "devstack" in usage.stdout
    unknown = run(installed, script, "nope")
    assert unknown.returncode == 2 and "unknown command 'nope'" in unknown.stderr
