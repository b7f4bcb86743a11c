"""Jobs forked from a warm interpreter behave as ``python -m MODULE`` in a new one, imports aside."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for_status, wait_until

from batch_devtools.local_batch import LocalBatch
from batch_devtools.local_batch.warm_start import WarmProcess, WarmStarts

PROBE = "warm_probe"
PROBE_CODE = """
import atexit, os, signal, sys
import warm_heavy

if __name__ == "__main__":
    atexit.register(lambda: print("atexit ran", flush=True))
    print("argv", sys.argv[1:])
    print("name", __name__, "env", os.environ.get("PROBE_VALUE"))
    print("own session", os.getsid(0) == os.getpid())
    print("heavy imports", warm_heavy.COUNT_FILE.read_text().count("x"))
    print("to stderr", file=sys.stderr)
    if sys.argv[1] == "hang":
        print("hanging", flush=True)
        signal.pause()
    sys.exit(int(sys.argv[1]))
"""
HEAVY_CODE = """
import os, pathlib
COUNT_FILE = pathlib.Path(os.environ["PROBE_COUNT_FILE"])
with COUNT_FILE.open("a") as count:
    count.write("x")
"""


@pytest.fixture
def probe_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / f"{PROBE}.py").write_text(textwrap.dedent(PROBE_CODE))
    (tmp_path / "warm_heavy.py").write_text(textwrap.dedent(HEAVY_CODE))
    return {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "PROBE_COUNT_FILE": str(tmp_path / "imports"),
        "PROBE_VALUE": "first",
    }


@pytest.fixture
def warm() -> Iterator[WarmStarts]:
    starts = WarmStarts(modules=(PROBE,))
    yield starts
    starts.close()


def start(warm: WarmStarts, env: dict[str, str], *arguments: str) -> WarmProcess:
    """A forked job, once the zygote of its environment is ready (the asks answered None start
    nothing here: a local Batch starts those jobs as new interpreters)."""
    argv = [sys.executable, "-m", PROBE, *arguments]
    return wait_until(lambda: warm.start(argv, env), "the zygote forks the job")


def run(warm: WarmStarts, env: dict[str, str], *arguments: str) -> tuple[WarmProcess, str, str]:
    process = start(warm, env, *arguments)
    stdout, stderr = process.stdout.read().decode(), process.stderr.read().decode()
    process.wait(timeout=60)
    return process, stdout, stderr


def test_jobs_of_one_environment_share_the_imports_and_each_runs_as_main(
    warm: WarmStarts, probe_env: dict[str, str]
) -> None:
    outputs = []
    for code, value in (("0", "first"), ("3", "second")):
        process, stdout, stderr = run(warm, {**probe_env, "PROBE_VALUE": value}, code, "--flag")
        assert process.returncode == int(code)
        assert stderr == "to stderr\n"
        outputs.append(stdout)
    first, second = outputs
    assert "argv ['0', '--flag']" in first and "argv ['3', '--flag']" in second
    assert "name __main__ env first" in first and "name __main__ env second" in second
    assert "own session True" in first and "own session True" in second
    assert "heavy imports 1" in second, "the second job imported the module again"
    assert first.endswith("atexit ran\n") and second.endswith("atexit ran\n")


def test_another_airflow_environment_gets_its_own_zygote(warm: WarmStarts, probe_env: dict[str, str]) -> None:
    run(warm, probe_env, "0")
    _, stdout, _ = run(warm, {**probe_env, "AIRFLOW__CORE__DAGS_FOLDER": "/elsewhere"}, "0")
    assert "heavy imports 2" in stdout


def test_a_job_killed_as_a_group_reports_the_signal(warm: WarmStarts, probe_env: dict[str, str]) -> None:
    process = start(warm, probe_env, "hang")
    assert process.stdout.readline() == b"argv ['hang']\n"
    wait_until(lambda: b"hanging" in process.stdout.readline(), "the job waits for a signal")
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL


def test_other_commands_and_a_closed_set_start_new_interpreters(
    warm: WarmStarts, probe_env: dict[str, str]
) -> None:
    run(warm, probe_env, "0")
    assert warm.ready == 1
    assert warm.start([sys.executable, "-m", "json.tool"], probe_env) is None
    assert warm.start(["python", "-m", PROBE, "0"], probe_env) is None  # not resolved to this interpreter
    warm.close()
    assert warm.ready == 0
    assert warm.start([sys.executable, "-m", PROBE, "0"], probe_env) is None


def test_a_local_batch_job_starts_cold_then_warm_with_its_output_and_exit_code(
    local_batch: LocalBatch, batch: Any, logs: Any, probe_env: dict[str, str]
) -> None:
    saved = local_batch.runtime.warm_starts
    warm = local_batch.runtime.warm_starts = WarmStarts(modules=(PROBE,))
    environment = [
        {"name": name, "value": probe_env[name]} for name in ("PYTHONPATH", "PROBE_COUNT_FILE", "PROBE_VALUE")
    ]

    def run_job(code: str) -> dict[str, Any]:
        job_id = batch.submit_job(
            jobName=f"warm-{code}",
            jobQueue=local_batch.job_queue,
            jobDefinition=local_batch.job_definition,
            containerOverrides={"command": ["python", "-m", PROBE, code], "environment": environment},
        )["jobId"]
        return wait_for_status(batch, job_id)

    try:
        cold = [run_job("0"), run_job("0")]
        wait_until(lambda: warm.ready, "the zygote the second job started is ready")
        warm_records = [run_job("0"), run_job("7")]
    finally:
        warm.close()
        local_batch.runtime.warm_starts = saved

    def logged(record: dict[str, Any]) -> list[str]:
        stream = record["container"]["logStreamName"]
        events = logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=stream, startFromHead=True)
        return [event["message"] for event in events["events"]]

    def lines_of(record: dict[str, Any]) -> list[str]:
        return wait_until(
            lambda: (found := logged(record)) and "atexit ran" in found and found, "the job's log"
        )

    for record in cold:
        assert record["status"] == "SUCCEEDED" and "own session True" in lines_of(record)
    succeeded, failed = warm_records
    assert succeeded["status"] == "SUCCEEDED" and failed["status"] == "FAILED"
    assert failed["container"]["exitCode"] == 7
    for record in warm_records:  # the cold jobs' imports and the zygote's, none of their own
        lines = lines_of(record)
        assert "heavy imports 3" in lines and "to stderr" in lines and "own session True" in lines
