"""The callback runner inside a callback's job: the callback really runs, and its failure fails the job.

It runs as the job would run it (``python -m airflow_batch_executor.in_job.callback_runner``), with a
callback module of its own on the path, on whichever Airflow is installed (3.2 runs callbacks in
process, 3.3 supervises them in a child).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid

import pytest

callback_module = pytest.importorskip(
    "airflow.executors.workloads.callback", reason="executor callbacks arrived in Airflow 3.2"
)


@pytest.fixture
def callbacks(tmp_path):
    (tmp_path / "e2e_callback_funcs.py").write_text(
        textwrap.dedent(
            """
            import os

            def record(marker, **_):
                with open(marker, "w") as file:
                    file.write("called")

            def explode(**_):
                raise RuntimeError("the alert service is down")
            """
        )
    )
    return tmp_path


def run(callbacks, path: str, kwargs: dict) -> subprocess.CompletedProcess[str]:
    from airflow.executors.workloads import BundleInfo, ExecuteCallback

    workload = ExecuteCallback(
        callback=callback_module.CallbackDTO(
            id=str(uuid.uuid4()), fetch_method="import_path", data={"path": path, "kwargs": kwargs}
        ),
        dag_rel_path="dag.py",
        bundle_info=BundleInfo(name="dags-folder"),
        log_path=None,
        token="t",
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(callbacks), *sys.path]),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://127.0.0.1:9/execution/",
    }
    return subprocess.run(
        [sys.executable, "-m", "airflow_batch_executor.in_job.callback_runner", "--json-string"]
        + [workload.model_dump_json()],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_callback_runs_in_the_job(callbacks):
    marker = callbacks / "marker"
    result = run(callbacks, "e2e_callback_funcs.record", {"marker": str(marker)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert marker.read_text() == "called"


def test_a_failing_callback_fails_its_job_with_the_reason(callbacks):
    result = run(callbacks, "e2e_callback_funcs.explode", {})
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "failed:" in result.stderr
