"""Tasks with their own image, role or volumes, through the local Batch: derived job definitions are
registered once per content, reused across tasks and restarts, refused when they cannot run, and pruned
only when this executor made them and no live job uses them."""

from __future__ import annotations

import argparse
import time
import uuid

import pytest

from airflow_batch_executor import BatchJobOverrides, EfsVolume, HostVolume
from airflow_batch_executor.cli import commands
from airflow_batch_executor.definitions.derive import (
    BASE_TAG,
    HASH_TAG,
    LAST_USED_TAG,
    MANAGED_TAG,
    REGISTERED_TAG,
)
from airflow_batch_executor.requests import task_specs as task_specs_module

from ..helpers import final_states, finished, pump, python_command, queue, workload

ROLE = "arn:aws:iam::123456789012:role/airflow-etl"
# The job checks it runs in the image its task asked for (the local Batch reports the definition's image).
CHECK_IMAGE = (
    "import os, sys; want = os.environ.get('WANT_IMAGE'); "
    "sys.exit(0 if want is None or os.environ['LOCAL_BATCH_IMAGE'] == want else 3)"
)


@pytest.fixture(autouse=True)
def image_checking_jobs(monkeypatch):
    monkeypatch.setattr(task_specs_module, "workload_command", lambda w: python_command(CHECK_IMAGE))


@pytest.fixture
def base_definition(batch_env, monkeypatch):
    """A base definition of this test's own (a copy of the local one), so counts start from zero."""
    client = batch_env.client("batch")
    [local] = client.describe_job_definitions(jobDefinitionName=batch_env.job_definition, status="ACTIVE")[
        "jobDefinitions"
    ]
    name = f"base-{uuid.uuid4().hex[:8]}"
    client.register_job_definition(
        jobDefinitionName=name,
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties=local["containerProperties"],
    )
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__JOB_DEFINITION", name)
    return name


def with_image(image: str, **fields) -> BatchJobOverrides:
    return BatchJobOverrides(image=image, environment={"WANT_IMAGE": image}, **fields)


def derived_definitions(batch_env, base: str) -> list[dict]:
    everything = batch_env.client("batch").describe_job_definitions(status="ACTIVE")["jobDefinitions"]
    return [d for d in everything if (d.get("tags") or {}).get(BASE_TAG) == base]


def run(executor, *items, timeout: float = 60.0):
    queue(executor, *items)
    return final_states(pump(executor, finished(*(item.ti.key for item in items)), timeout=timeout))


def test_tasks_with_one_image_share_a_revision_another_image_gets_another_and_a_restart_reuses_them(
    make_executor, batch_env, base_definition
):
    executor = make_executor()
    same = [workload(f"etl{i}", run_id="shared", executor_config=with_image("repo/etl:1")) for i in range(2)]
    other = workload("ml", run_id="shared", executor_config=with_image("repo/ml:1"))
    plain = workload("plain", run_id="shared")
    states = run(executor, *same, other, plain)

    assert set(states.values()) == {"success"}, "each job ran in the image its task asked for"
    derived = derived_definitions(batch_env, base_definition)
    assert sorted(d["containerProperties"]["image"] for d in derived) == ["repo/etl:1", "repo/ml:1"]
    assert all(d["revision"] == 1 for d in derived), "one revision per content"
    by_image = {d["containerProperties"]["image"]: d for d in derived}
    submitted = {r["jobName"].split("-")[1]: r["jobDefinition"] for r in batch_env.submitted_requests()}
    etl_arn = by_image["repo/etl:1"]["jobDefinitionArn"]
    assert submitted["etl0"] == submitted["etl1"] == etl_arn
    assert submitted["ml"] == by_image["repo/ml:1"]["jobDefinitionArn"]
    assert submitted["plain"] == base_definition
    for definition in derived:
        tags = definition["tags"]
        assert tags[MANAGED_TAG] == "true" and tags[BASE_TAG] == base_definition
        assert definition["jobDefinitionName"] == f"{base_definition}-{tags[HASH_TAG]}"
        assert int(tags[REGISTERED_TAG]) <= time.time()

    batch_env.clear_api_calls()
    restarted = make_executor()
    again = workload("etl0", run_id="after-restart", executor_config=with_image("repo/etl:1"))
    assert run(restarted, again) == {again.ti.key: "success"}
    assert batch_env.api_calls().get("registerjobdefinition", 0) == 0, "the restarted executor found it"
    assert batch_env.submitted_requests()[-1]["jobDefinition"] == etl_arn
    assert len(derived_definitions(batch_env, base_definition)) == 2


def test_fifty_concurrent_tasks_with_one_new_image_register_exactly_one_revision(
    make_executor, batch_env, base_definition, monkeypatch
):
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__SUBMIT_CONCURRENCY", "16")
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__SUBMIT_RATE_LIMIT", "200")
    executor = make_executor()
    batch_env.clear_api_calls()
    items = [workload(f"t{i}", run_id="fifty", executor_config=with_image("repo/new:50")) for i in range(50)]
    states = run(executor, *items, timeout=120)

    assert list(states.values()) == ["success"] * 50
    assert batch_env.api_calls()["registerjobdefinition"] == 1
    [derived] = derived_definitions(batch_env, base_definition)
    assert {r["jobDefinition"] for r in batch_env.submitted_requests()} == {derived["jobDefinitionArn"]}


def test_a_new_base_revision_yields_new_derived_definitions(make_executor, batch_env, base_definition):
    first = make_executor()
    item = workload("etl", run_id="base-1", executor_config=with_image("repo/etl:1"))
    assert run(first, item) == {item.ti.key: "success"}
    client = batch_env.client("batch")
    [base] = client.describe_job_definitions(jobDefinitionName=base_definition, status="ACTIVE")[
        "jobDefinitions"
    ]
    changed = {**base["containerProperties"], "environment": [{"name": "BASE", "value": "2"}]}
    client.register_job_definition(
        jobDefinitionName=base_definition,
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties=changed,
    )

    second = make_executor()
    later = workload("etl", run_id="base-2", executor_config=with_image("repo/etl:1"))
    assert run(second, later) == {later.ti.key: "success"}
    derived = derived_definitions(batch_env, base_definition)
    assert len({d["jobDefinitionName"] for d in derived}) == 2
    [newest] = [d for d in derived if d["containerProperties"]["environment"] == changed["environment"]]
    assert batch_env.submitted_requests()[-1]["jobDefinition"] == newest["jobDefinitionArn"]


def test_a_role_outside_the_allow_list_fails_only_its_task(
    make_executor, batch_env, base_definition, monkeypatch
):
    monkeypatch.setenv(
        "AIRFLOW__AWS_BATCH_EXECUTOR__ALLOWED_JOB_ROLE_ARNS", "arn:aws:iam::123456789012:role/airflow-*"
    )
    executor = make_executor()
    batch_env.clear_api_calls()
    refused = workload(
        "admin",
        run_id="roles",
        executor_config=BatchJobOverrides(job_role_arn="arn:aws:iam::123456789012:role/admin"),
    )
    allowed = workload("etl", run_id="roles", executor_config=BatchJobOverrides(job_role_arn=ROLE))
    queue(executor, refused, allowed)
    events = pump(executor, finished(refused.ti.key, allowed.ti.key))

    assert final_states(events) == {refused.ti.key: "failed", allowed.ti.key: "success"}
    [reason] = [info for key, state, info in events if key == refused.ti.key and state == "failed"]
    assert "jobRoleArn 'arn:aws:iam::123456789012:role/admin' is not allowed" in reason
    assert "allowed_job_role_arns" in reason
    [request] = batch_env.submitted_requests()
    assert request["tags"]["airflow.task_id"] == "etl"
    [derived] = derived_definitions(batch_env, base_definition)
    assert derived["containerProperties"]["jobRoleArn"] == ROLE
    assert batch_env.api_calls()["registerjobdefinition"] == 1


def test_fields_the_platform_cannot_run_fail_only_their_task_before_anything_is_sent(
    make_executor, batch_env, base_definition
):
    executor = make_executor()
    too_big = workload(
        "big",
        run_id="fargate",
        executor_config={
            "jobDefinitionOverrides": {"containerProperties": {"ephemeralStorage": {"sizeInGiB": 300}}}
        },
    )
    efs = {
        "volumes": [{"name": "data", "efsVolumeConfiguration": {"fileSystemId": "fs-0123"}}],
        "mountPoints": [{"sourceVolume": "data", "containerPath": "/mnt/data"}],
        "fargatePlatformConfiguration": {"platformVersion": "1.3.0"},
    }
    old_platform = workload(
        "efs13", run_id="fargate", executor_config={"jobDefinitionOverrides": {"containerProperties": efs}}
    )
    shm = workload("shm", run_id="fargate", executor_config=BatchJobOverrides(shared_memory_mib=512))
    mounted = workload(
        "mounted",
        run_id="fargate",
        executor_config=BatchJobOverrides(
            volumes=[EfsVolume("data", "fs-0123", "/mnt/data"), HostVolume("tmp", "/scratch")]
        ),
    )
    queue(executor, too_big, old_platform, shm, mounted)
    keys = [item.ti.key for item in (too_big, old_platform, shm, mounted)]
    events = pump(executor, finished(*keys))
    reasons = {key: info for key, state, info in events if state == "failed"}

    assert final_states(events)[mounted.ti.key] == "success"
    assert (
        "ephemeralStorage.sizeInGiB: ephemeral storage of 300 GiB is not valid on Fargate"
        in reasons[too_big.ti.key]
    )
    assert "use a whole number from 21 to 200 GiB" in reasons[too_big.ti.key]
    assert "EFS volumes need Fargate platform version 1.4.0 or later" in reasons[old_platform.ti.key]
    assert "linuxParameters.sharedMemorySize is not applicable on Fargate" in reasons[shm.ti.key]
    [request] = batch_env.submitted_requests()
    assert request["tags"]["airflow.task_id"] == "mounted"
    [derived] = derived_definitions(batch_env, base_definition)
    assert [m["containerPath"] for m in derived["containerProperties"]["mountPoints"]] == [
        "/mnt/data",
        "/scratch",
    ]


def prune_lines(output: str) -> str:
    """The command's own lines, without the log lines of the executor's libraries."""
    return "\n".join(line for line in output.splitlines() if not line.startswith("20"))


def test_prune_removes_only_managed_unused_definitions(make_executor, batch_env, base_definition, capsys):
    executor = make_executor()
    done = workload("done", run_id="prune", executor_config=with_image("repo/done:1"))
    assert run(executor, done) == {done.ti.key: "success"}
    client = batch_env.client("batch")
    [unused] = derived_definitions(batch_env, base_definition)
    sleeper = client.register_job_definition(
        jobDefinitionName=f"{base_definition}-busy",
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties={**unused["containerProperties"], "image": "repo/busy:1"},
        tags={**unused["tags"], HASH_TAG: "busy"},
    )["jobDefinitionArn"]
    busy_job = client.submit_job(
        jobName="busy",
        jobQueue=batch_env.job_queue,
        jobDefinition=sleeper,
        containerOverrides={"command": python_command("import time; time.sleep(60)")},
    )["jobId"]
    unmanaged = client.register_job_definition(
        jobDefinitionName=f"{base_definition}-hand-made",
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties=unused["containerProperties"],
        tags={"airflow-batch-executor.base": base_definition},
    )["jobDefinitionArn"]
    capsys.readouterr()

    commands.prune_definitions(argparse.Namespace(older_than="0s", yes=False, verbose=None))
    dry_run = prune_lines(capsys.readouterr().out)
    assert f"would deregister  {unused['jobDefinitionName']}:1" in dry_run
    assert (
        f"keep              {base_definition}-busy:1" in dry_run
        and "used by a waiting or running job" in dry_run
    )
    assert "hand-made" not in dry_run and f"{base_definition}:" not in dry_run
    assert len(derived_definitions(batch_env, base_definition)) == 3, "a dry run changes nothing"

    commands.prune_definitions(argparse.Namespace(older_than="30d", yes=True, verbose=None))
    assert "0 derived job definition(s) deregistered" in prune_lines(capsys.readouterr().out)

    commands.prune_definitions(argparse.Namespace(older_than="0s", yes=True, verbose=None))
    assert f"deregistered      {unused['jobDefinitionName']}:1" in capsys.readouterr().out
    active = {
        d["jobDefinitionArn"] for d in client.describe_job_definitions(status="ACTIVE")["jobDefinitions"]
    }
    assert unused["jobDefinitionArn"] not in active
    assert {sleeper, unmanaged} <= active
    assert any(
        d["jobDefinitionName"] == base_definition
        for d in client.describe_job_definitions(status="ACTIVE")["jobDefinitions"]
    )
    client.terminate_job(jobId=busy_job, reason="test over")


def test_prune_refuses_a_bad_duration(batch_env, capsys):
    with pytest.raises(SystemExit):
        commands.prune_definitions(argparse.Namespace(older_than="a month", yes=False, verbose=None))
    assert (
        "--older-than 'a month' is not a duration; use a whole number and a unit: 30d"
        in capsys.readouterr().out
    )


def test_a_definition_pruned_while_the_registry_remembers_it_is_registered_again(
    make_executor, batch_env, base_definition, capsys
):
    """The registry remembers a derived definition for 10 minutes; a prune inside that window used to
    make every later submission for it refused (the local Batch, like AWS, refuses INACTIVE ones)."""
    executor = make_executor()
    first = workload("pruned", run_id="before-prune", executor_config=with_image("repo/pruned:1"))
    assert run(executor, first) == {first.ti.key: "success"}
    [used] = derived_definitions(batch_env, base_definition)
    assert int(used["tags"][LAST_USED_TAG]) >= int(used["tags"][REGISTERED_TAG])
    commands.prune_definitions(argparse.Namespace(older_than="0s", yes=True, verbose=None))
    assert f"deregistered      {used['jobDefinitionName']}:1" in capsys.readouterr().out
    assert derived_definitions(batch_env, base_definition) == []

    again = workload("pruned", run_id="after-prune", executor_config=with_image("repo/pruned:1"))
    assert run(executor, again) == {again.ti.key: "success"}, "not failed: registered anew"
    [registered] = derived_definitions(batch_env, base_definition)
    assert registered["revision"] == 2 and registered["jobDefinitionName"] == used["jobDefinitionName"]


def test_prune_judges_by_last_use_not_by_registration(make_executor, batch_env, base_definition, capsys):
    executor = make_executor()
    item = workload("recent", run_id="last-use", executor_config=with_image("repo/recent:1"))
    assert run(executor, item) == {item.ti.key: "success"}
    [used] = derived_definitions(batch_env, base_definition)
    client = batch_env.client("batch")
    long_ago = str(int(time.time()) - 40 * 86400)
    client.tag_resource(resourceArn=used["jobDefinitionArn"], tags={REGISTERED_TAG: long_ago})
    commands.prune_definitions(argparse.Namespace(older_than="30d", yes=False, verbose=None))
    out = capsys.readouterr().out
    assert f"keep              {used['jobDefinitionName']}:1" in out and "used more recently" in out
    client.tag_resource(resourceArn=used["jobDefinitionArn"], tags={LAST_USED_TAG: long_ago})
    commands.prune_definitions(argparse.Namespace(older_than="30d", yes=False, verbose=None))
    assert f"would deregister  {used['jobDefinitionName']}:1" in capsys.readouterr().out
