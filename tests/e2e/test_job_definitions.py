"""Tasks with their own image and volumes through a real scheduler: each runs on a job definition
derived from the worker definition, registered by the executor, beside a plain task."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.e2e.harness import DAGS_FOLDER, RELEASE_HELPER, FinishedRun, Runs, e2e_stack

pytestmark = pytest.mark.e2e

DAG_ID = "e2e_own_definitions"
BASE_IMAGE = "local/airflow-task:latest"
OTHER_IMAGE = "local/airflow-task-ml:2"


@pytest.fixture(scope="module")
def runs() -> Iterator[Runs]:
    # operator_tools.py (for e2e_render, never triggered here) imports the release helper.
    files = ["job_definitions.py", "operator_tools.py", RELEASE_HELPER]
    with e2e_stack(DAGS_FOLDER, dag_files=files) as stack:
        yield Runs(stack, [DAG_ID])


@pytest.fixture(scope="module")
def run(runs: Runs) -> FinishedRun:
    return runs.finish(DAG_ID)


def test_one_task_runs_in_another_image_and_one_mounts_a_volume_beside_a_plain_task(
    runs: Runs, run: FinishedRun
) -> None:
    assert run.state == "success", "each task checks its image and mount points inside its job"
    assert run.states() == {
        ("plain", -1): "success",
        ("other_image", -1): "success",
        ("mounted", -1): "success",
    }
    stack = runs.stack
    jobs = {job["jobId"]: job for job in stack.batch.jobs()}
    ran = {task: jobs[str(ti.external_executor_id)] for (task, _), ti in run.task_instances.items()}
    assert ran["plain"]["image"] == BASE_IMAGE
    assert ran["other_image"]["image"] == OTHER_IMAGE, "the local Batch shows the other image ran"
    assert ran["mounted"]["image"] == BASE_IMAGE

    base = stack.environment.job_definition
    assert run.submission("plain")["jobDefinition"] == base
    client = stack.batch_client()
    for task in ("other_image", "mounted"):
        arn = run.submission(task)["jobDefinition"]
        assert ran[task]["jobDefinition"] == arn
        [definition] = client.describe_job_definitions(jobDefinitions=[arn])["jobDefinitions"]
        assert definition["jobDefinitionName"].startswith(f"{base}-")
        assert definition["tags"]["airflow-batch-executor.managed"] == "true"
        assert definition["tags"]["airflow-batch-executor.base"] == base
    [mounted] = client.describe_job_definitions(jobDefinitions=[run.submission("mounted")["jobDefinition"]])[
        "jobDefinitions"
    ]
    properties = mounted["containerProperties"]
    assert properties["volumes"] == [
        {"name": "shared", "efsVolumeConfiguration": {"fileSystemId": "fs-0e2e0e2e"}}
    ]
    assert properties["mountPoints"] == [
        {"sourceVolume": "shared", "containerPath": "/mnt/shared", "readOnly": False}
    ]


def test_render_shows_the_derived_definition_the_task_uses(runs: Runs, run: FinishedRun) -> None:
    result = runs.stack.airflow_cli("aws-batch-executor", "render", DAG_ID, "other_image")

    assert result.returncode == 0, result.stdout + result.stderr
    rendered = json.loads(result.stdout[result.stdout.index("{") :])
    derived = rendered["derivedJobDefinition"]
    assert derived["derivedFrom"] == runs.stack.environment.job_definition
    assert derived["registeredAs"] == run.submission("other_image")["jobDefinition"]
    assert rendered["submitJob"]["jobDefinition"] == derived["registeredAs"]
    assert derived["registerJobDefinition"]["containerProperties"]["image"] == OTHER_IMAGE
    assert "jobDefinitionOverrides" not in rendered["submitJob"]


def test_render_shows_a_derived_definition_before_it_is_registered(runs: Runs) -> None:
    stack = runs.stack
    stack.wait_for_dags(["e2e_render"])

    result = stack.airflow_cli("aws-batch-executor", "render", "e2e_render", "own_image")

    assert result.returncode == 0, result.stdout + result.stderr
    rendered = json.loads(result.stdout[result.stdout.index("{") :])
    derived = rendered["derivedJobDefinition"]
    name = derived["registerJobDefinition"]["jobDefinitionName"]
    assert derived["registeredAs"] is None and rendered["submitJob"]["jobDefinition"] == name
    assert name.startswith(f"{stack.environment.job_definition}-")
    assert f"{name} is not registered yet" in result.stderr
    assert stack.batch_client().describe_job_definitions(jobDefinitionName=name)["jobDefinitions"] == [], (
        "render never registers"
    )
