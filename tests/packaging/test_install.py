"""A plain, non-editable ``pip install .`` into a clean virtualenv registers the provider, and ships
only the runtime: no development tooling (the local Batch, the devstack: ``devtools/``), no moto, no
console script."""

from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DESIGN_OPTIONS = (
    "region_name",
    "job_queue",
    "job_definition",
    "job_name",
    "conn_id",
    "submit_job_kwargs",
    "max_submit_job_attempts",
    "check_health_on_startup",
)


def uv() -> str:
    found = ROOT / ".uv" / "bin" / "uv"
    if found.exists():
        return str(found)
    other = shutil.which("uv")
    assert other, "uv is installed into .uv/ by scripts/bootstrap (scripts/uv)"
    return other


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    work = tmp_path_factory.mktemp("install")
    wheel_dir, venv = work / "dist", work / "venv"
    subprocess.run([uv(), "build", "--wheel", "-q", "-o", str(wheel_dir), str(ROOT)], check=True, timeout=300)
    [wheel] = wheel_dir.glob("*.whl")
    subprocess.run([uv(), "venv", "-q", "-p", sys.executable, str(venv)], check=True, timeout=120)
    subprocess.run(
        [uv(), "pip", "install", "-q", "-p", str(venv / "bin" / "python"), str(wheel)],
        check=True,
        timeout=600,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    env.update(AIRFLOW_HOME=str(work / "airflow-home"), PATH=f"{venv / 'bin'}:{env['PATH']}")
    return {
        "python": str(venv / "bin" / "python"),
        "airflow": str(venv / "bin" / "airflow"),
        "wheel": str(wheel),
        **{f"env:{k}": v for k, v in env.items()},
    }


def run(installed: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {k[4:]: v for k, v in installed.items() if k.startswith("env:")}
    return subprocess.run(
        list(args), capture_output=True, text=True, env=env, timeout=180, cwd="/", check=False
    )


def test_the_package_is_importable_from_site_packages(installed):
    result = run(
        installed,
        installed["python"],
        "-c",
        "import airflow_batch_executor as m; print(m.__file__); print(m.AwsBatchExecutor.__name__)",
    )
    assert result.returncode == 0, result.stderr
    assert "site-packages" in result.stdout and "AwsBatchExecutor" in result.stdout


def test_config_list_documents_the_options(installed):
    result = run(
        installed,
        installed["airflow"],
        "config",
        "list",
        "--section",
        "aws_batch_executor",
        "--include-descriptions",
        "--defaults",
    )
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
    shipped = yaml.safe_load((ROOT / "config_templates" / "config.yml").read_text())["aws_batch_executor"][
        "options"
    ]
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
    shipped = yaml.safe_load((ROOT / "config_templates" / "config.yml").read_text())["aws_batch_executor"][
        "options"
    ]
    for name in shipped:
        assert (
            f"{name} (" in result.stdout and f"AIRFLOW__AWS_BATCH_EXECUTOR__{name.upper()}" in result.stdout
        )
    assert "submit_rate_limit (float, default: 40)" in result.stdout
    assert "Current value: 25" in result.stdout


def test_the_version_has_one_source():
    """pyproject.toml takes the version from airflow_batch_executor/version.py; it names none itself."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["hatch"]["version"] == {"path": "airflow_batch_executor/version.py"}


def test_the_wheel_has_the_version_of_version_py(installed):
    version = runpy.run_path(str(ROOT / "airflow_batch_executor" / "version.py"))["__version__"]
    assert Path(installed["wheel"]).name.startswith(f"airflow_batch_executor-{version}-")
    code = (
        "import importlib.metadata, airflow_batch_executor as package; "
        "print(importlib.metadata.version('airflow-batch-executor'), package.__version__)"
    )
    result = run(installed, installed["python"], "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == [version, version]


def test_the_wheel_holds_the_runtime_only(installed):
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        names = wheel.namelist()
        [entry_points] = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
        entry_points_text = wheel.read(entry_points).decode()
    assert [name for name in names if "local_batch" in name or "devstack" in name] == []
    assert {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")} == {
        "airflow_batch_executor"
    }
    assert "airflow_batch_executor/__main__.py" not in names
    assert "[apache_airflow_provider]" in entry_points_text
    assert "console_scripts" not in entry_points_text and "gui_scripts" not in entry_points_text


def test_every_module_imports_without_moto(installed):
    """Each module of the installed package imports in a venv without moto, and none asks for it."""
    code = (
        "import importlib, importlib.util, json, pkgutil, sys\n"
        "import airflow_batch_executor as package\n"
        "prefix = package.__name__ + '.'\n"
        "names = [package.__name__] + [m.name for m in pkgutil.walk_packages(package.__path__, prefix)]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps({'modules': names, 'file': package.__file__,\n"
        "                  'moto_installed': importlib.util.find_spec('moto') is not None,\n"
        "                  'moto_imported': sorted(m for m in sys.modules if m.split('.')[0] == 'moto')}))\n"
    )
    result = run(installed, installed["python"], "-c", code)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "site-packages" in report["file"]
    assert report["moto_installed"] is False, "moto must not be a dependency of the executor"
    assert report["moto_imported"] == []
    source = ROOT / "airflow_batch_executor"
    in_the_tree = {
        ".".join(("airflow_batch_executor", *path.relative_to(source).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        for path in source.rglob("*.py")
    }
    assert set(report["modules"]) == in_the_tree


def test_the_devtools_console_script_runs_from_the_project_venv():
    script = Path(sys.executable).parent / "batch-devtools"
    assert script.exists(), "scripts/bootstrap installs the devtools (devtools/) into .venv"
    usage = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert usage.returncode == 0, usage.stderr
    assert "local-batch" in usage.stdout and "devstack" in usage.stdout
    local_batch = subprocess.run(
        [str(script), "local-batch", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert local_batch.returncode == 0 and "--port" in local_batch.stdout, local_batch.stderr
    unknown = subprocess.run([str(script), "nope"], capture_output=True, text=True, timeout=60, check=False)
    assert unknown.returncode == 2 and "unknown command 'nope'" in unknown.stderr
