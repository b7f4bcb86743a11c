"""The oldest supported Airflow (3.1): the package installs next to it, and the executor's unit and
local-Batch tests pass there.

Airflow 3.1 differs where it matters to us: no ``ExecuteCallback`` workloads, no ``.key`` on
``ExecuteTask``, no ``get_execution_api_server_url``, and a hard error when two providers describe
one config section.

The versions come from ``constraints/airflow-<OLDEST_AIRFLOW>.txt``, the executor, its devtools and
the dev group resolved with that Airflow; ``scripts/lock`` regenerates it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OLDEST_AIRFLOW = "3.1.8"  # also oldest_airflow in scripts/lock
CONSTRAINTS = ROOT / "constraints" / f"airflow-{OLDEST_AIRFLOW}.txt"
TESTS = ["tests/unit", "tests/integration/test_executor.py", "tests/integration/test_health_check.py"]


def uv() -> str:
    found = ROOT / ".uv" / "bin" / "uv"
    if found.exists():
        return str(found)
    other = shutil.which("uv")
    assert other, "uv is installed into .uv/ by scripts/bootstrap (scripts/uv)"
    return other


def test_unit_and_executor_tests_pass_on_the_oldest_supported_airflow(tmp_path):
    assert CONSTRAINTS.exists(), f"{CONSTRAINTS.relative_to(ROOT)} is missing: run scripts/lock"
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    subprocess.run([uv(), "venv", "-q", "-p", sys.executable, str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            uv(),
            "pip",
            "install",
            "-q",
            "-p",
            str(python),
            "-c",
            str(CONSTRAINTS),
            f"apache-airflow=={OLDEST_AIRFLOW}",
            str(ROOT),
            str(ROOT / "devtools"),
            "--group",
            f"{ROOT / 'pyproject.toml'}:dev",
        ],
        check=True,
        timeout=900,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "PYTEST"))}
    result = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *TESTS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    version = subprocess.run(
        [str(python), "-c", "import airflow; print(airflow.__version__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        check=False,
    )
    assert version.stdout.strip() == OLDEST_AIRFLOW
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout.splitlines()[-1]
