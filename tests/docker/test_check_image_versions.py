"""scripts/check-image-versions.sh with a fake ``docker`` on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check-image-versions.sh"
SH = shutil.which("sh") or "/bin/sh"

FAKE_DOCKER = """#!/bin/sh
printf '%s\\n' "$@" > "$DOCKER_ARGS_FILE"
[ -n "${FAKE_DOCKER_FAIL:-}" ] && exit 125
echo "$FAKE_IMAGE_VERSIONS"
"""


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    full_env = {
        "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
        "DOCKER_ARGS_FILE": str(tmp_path / "docker_args"),
        **env,
    }
    return subprocess.run(
        [SH, str(SCRIPT), *args],
        env=full_env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_match_with_scheduler_versions(tmp_path):
    proc = run(tmp_path, "img:1", SCHEDULER_VERSIONS="3.3.2 3.11", FAKE_IMAGE_VERSIONS="3.3.2 3.11")
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout
    args = (tmp_path / "docker_args").read_text().splitlines()
    assert args[:5] == ["run", "--rm", "--entrypoint", "python", "img:1"]


def test_mismatch_names_the_fix(tmp_path):
    proc = run(tmp_path, "img:1", SCHEDULER_VERSIONS="3.3.2 3.11", FAKE_IMAGE_VERSIONS="3.3.2 3.12")
    assert proc.returncode == 1
    assert "MISMATCH" in proc.stderr
    assert "--build-arg AIRFLOW_VERSION=3.3.2 --build-arg PYTHON_VERSION=3.11" in proc.stderr


def test_probes_the_scheduler_interpreter(tmp_path):
    """Without SCHEDULER_VERSIONS the scheduler's interpreter is asked (here: this venv's)."""
    import airflow

    local = f"{airflow.__version__} {sys.version_info[0]}.{sys.version_info[1]}"
    proc = run(tmp_path, "img:1", SCHEDULER_PYTHON=sys.executable, FAKE_IMAGE_VERSIONS=local)
    assert proc.returncode == 0, proc.stderr
    assert f"airflow {airflow.__version__}" in proc.stdout


@pytest.mark.parametrize(
    ("args", "env"),
    [((), {}), (("img:1",), {"SCHEDULER_VERSIONS": "3.3.2 3.11", "FAKE_DOCKER_FAIL": "1"})],
    ids=["usage", "docker-fails"],
)
def test_errors_exit_2(tmp_path, args, env):
    proc = run(tmp_path, *args, FAKE_IMAGE_VERSIONS="x", **env)
    assert proc.returncode == 2
