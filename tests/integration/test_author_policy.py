"""What a DAG author may ask for, through the local Batch: a refused task fails at once and nothing is
registered or submitted for it, while the tasks beside it run; what an operator allows runs; ``render``
shows the refusal."""

from __future__ import annotations

import argparse
import json
import uuid

import pytest

from airflow_batch_executor import BatchJobOverrides, HostVolume
from airflow_batch_executor.cli import commands
from airflow_batch_executor.requests import task_specs as task_specs_module

from .helpers import final_states, finished, pump, python_command, queue, workload

PROPS = "jobDefinitionOverrides.containerProperties"
ROLE = "arn:aws:iam::123456789012:role/airflow-etl"
ADMIN = "arn:aws:iam::123456789012:role/admin"
# The job checks it sees the mount points its task asked for (the local Batch lists them for the job).
CHECK_MOUNTS = (
    "import os, sys; want = os.environ.get('WANT_MOUNTS'); "
    "sys.exit(0 if want is None or os.environ['LOCAL_BATCH_MOUNT_POINTS'] == want else 3)"
)


@pytest.fixture(autouse=True)
def mount_checking_jobs(monkeypatch):
    monkeypatch.setattr(task_specs_module, "workload_command", lambda w: python_command(CHECK_MOUNTS))


def register(
    batch_env, name: str, *, platform: str = "FARGATE", retry: dict | None = None, **properties
) -> str:
    """A copy of the local job definition under ``name``, on ``platform``, with ``properties`` set."""
    client = batch_env.client("batch")
    [local] = client.describe_job_definitions(jobDefinitionName=batch_env.job_definition, status="ACTIVE")[
        "jobDefinitions"
    ]
    container = {**local["containerProperties"], **properties}
    if platform == "EC2":
        container["resourceRequirements"] = [
            {"type": "VCPU", "value": "1"},
            {"type": "MEMORY", "value": "2048"},
        ]
        for fargate_only in ("networkConfiguration", "fargatePlatformConfiguration"):
            container.pop(fargate_only, None)
    client.register_job_definition(
        jobDefinitionName=name,
        type="container",
        platformCapabilities=[platform],
        containerProperties=container,
        **({"retryStrategy": retry} if retry else {}),
    )
    return name


@pytest.fixture
def ec2_base(batch_env, monkeypatch):
    """An EC2 job definition of this test's own as the configured one: where host access would work."""
    name = register(batch_env, f"ec2-base-{uuid.uuid4().hex[:8]}", platform="EC2")
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__JOB_DEFINITION", name)
    return name


def every_definition(batch_env) -> list[str]:
    pages = batch_env.client("batch").get_paginator("describe_job_definitions").paginate()
    return sorted(d["jobDefinitionArn"] for page in pages for d in page["jobDefinitions"])


def reasons_of(events) -> dict:
    return {key: info for key, state, info in events if state == "failed"}


def with_mounts(*volumes: HostVolume) -> BatchJobOverrides:
    wanted = ",".join(volume.container_path for volume in volumes)
    return BatchJobOverrides(volumes=list(volumes), environment={"WANT_MOUNTS": wanted})


def test_refused_tasks_fail_at_once_with_nothing_registered_or_submitted_while_a_plain_task_runs(
    make_executor, batch_env, ec2_base
):
    executor = make_executor()
    definitions_before = every_definition(batch_env)
    batch_env.clear_api_calls()
    root_user = BatchJobOverrides(image="repo/etl:1")
    root_user["jobDefinitionOverrides"]["containerProperties"]["user"] = "0"  # a DAG author may mutate it
    refused = {
        "privileged": (
            {"jobDefinitionOverrides": {"containerProperties": {"privileged": True}}},
            f"{PROPS}.privileged",
            "allow_privileged_containers",
        ),
        "docker_socket": (
            with_mounts(HostVolume("docker", "/var/run/docker.sock", source_path="/var/run/docker.sock")),
            f"{PROPS}.volumes[0].host.sourcePath",
            "allowed_host_paths",
        ),
        "dev_mem": (
            {
                "jobDefinitionOverrides": {
                    "containerProperties": {
                        "linuxParameters": {
                            "devices": [{"hostPath": "/dev/mem", "containerPath": "/dev/mem"}]
                        }
                    }
                }
            },
            f"{PROPS}.linuxParameters.devices[0].hostPath",
            "allowed_devices",
        ),
        "root_user": (root_user, f"{PROPS}.user", "allow_root_user"),
        "secrets": (
            {
                "jobDefinitionOverrides": {
                    "containerProperties": {"secrets": [{"name": "S", "valueFrom": "x"}]}
                }
            },
            f"{PROPS}.secrets",
            "allowed_job_definitions",
        ),
        "foreign_definition": (
            BatchJobOverrides(job_definition=batch_env.job_definition),
            "jobDefinition",
            "allowed_job_definitions",
        ),
        "batch_retries": ({"retryStrategy": {"attempts": 3}}, "retryStrategy.attempts", "Airflow's retries"),
        "task_metadata": (
            BatchJobOverrides(environment={"ECS_CONTAINER_METADATA_URI_V4": "http://author.example/"}),
            "containerOverrides.environment ECS_CONTAINER_METADATA_URI_V4",
            "which ECS task",
        ),
    }
    items = {
        task: workload(task, run_id="policy", executor_config=config)
        for task, (config, *_) in refused.items()
    }
    plain = workload("plain", run_id="policy")
    queue(executor, *items.values(), plain)
    events = pump(executor, finished(plain.ti.key, *(item.ti.key for item in items.values())))

    states = final_states(events)
    assert states.pop(plain.ti.key) == "success"
    assert states == {item.ti.key: "failed" for item in items.values()}
    reasons = reasons_of(events)
    logged = {
        log.task_id: log.extra for log in executor._task_event_logs if log.event == "batch job not submitted"
    }
    for task, (_, field, option) in refused.items():
        key = items[task].ti.key
        assert field in reasons[key] and option in reasons[key] and "Fix:" in reasons[key], reasons[key]
        assert logged[task] == reasons[key], "the reason is in the task's event log"
        assert not [e for e in events if e[0] == key and e[1] == "running"], "never submitted"
    [submitted] = batch_env.submitted_requests()
    assert submitted["tags"]["airflow.task_id"] == "plain"
    assert submitted["retryStrategy"] == {"attempts": 1}, "no job definition can make Batch re-run a try"
    assert batch_env.api_calls().get("registerjobdefinition", 0) == 0
    assert every_definition(batch_env) == definitions_before


def test_a_host_path_the_operator_allows_is_mounted_and_one_outside_it_is_not(
    make_executor, batch_env, ec2_base, monkeypatch
):
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__ALLOWED_HOST_PATHS", "/srv/shared/")
    executor = make_executor()
    batch_env.clear_api_calls()
    allowed = workload(
        "models",
        run_id="host-paths",
        executor_config=with_mounts(HostVolume("models", "/mnt/models", source_path="/srv/shared/models")),
    )
    outside = workload(
        "etc",
        run_id="host-paths",
        executor_config=with_mounts(HostVolume("etc", "/mnt/etc", source_path="/srv/shared/../../etc")),
    )
    queue(executor, allowed, outside)
    events = pump(executor, finished(allowed.ti.key, outside.ti.key))

    assert final_states(events) == {allowed.ti.key: "success", outside.ti.key: "failed"}
    assert (
        "'/srv/shared/../../etc' is not an absolute path without '..'" in reasons_of(events)[outside.ti.key]
    )
    [submitted] = batch_env.submitted_requests()
    [derived] = batch_env.client("batch").describe_job_definitions(
        jobDefinitions=[submitted["jobDefinition"]]
    )["jobDefinitions"]
    assert derived["containerProperties"]["volumes"] == [
        {"name": "models", "host": {"sourcePath": "/srv/shared/models"}}
    ]
    assert batch_env.api_calls()["registerjobdefinition"] == 1


@pytest.fixture
def listed_definitions(batch_env, monkeypatch):
    """Two definitions the operator lists by prefix: one with an allowed role, one with another role."""
    prefix = f"listed-{uuid.uuid4().hex[:8]}"
    names = {
        "etl": register(batch_env, f"{prefix}-etl", jobRoleArn=ROLE),
        "admin": register(batch_env, f"{prefix}-admin", jobRoleArn=ADMIN),
    }
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__ALLOWED_JOB_DEFINITIONS", f"{prefix}-*")
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__ALLOWED_JOB_ROLE_ARNS", ROLE)
    return names


def test_a_listed_definition_whose_role_is_not_allowed_is_refused_before_anything_is_sent(
    make_executor, batch_env, listed_definitions
):
    executor = make_executor()
    batch_env.clear_api_calls()
    etl = workload("etl", run_id="listed", executor_config={"jobDefinition": listed_definitions["etl"]})
    admin = workload(
        "admin",
        run_id="listed",
        executor_config=BatchJobOverrides(job_definition=listed_definitions["admin"]),
    )
    derived_admin = workload(
        "derived_admin",
        run_id="listed",
        executor_config=BatchJobOverrides(job_definition=listed_definitions["admin"], image="repo/x:1"),
    )
    queue(executor, etl, admin, derived_admin)
    events = pump(executor, finished(etl.ti.key, admin.ti.key, derived_admin.ti.key))

    assert final_states(events) == {
        etl.ti.key: "success",
        admin.ti.key: "failed",
        derived_admin.ti.key: "failed",
    }
    reasons = reasons_of(events)
    for key in (admin.ti.key, derived_admin.ti.key):
        assert f"jobRoleArn '{ADMIN}'" in reasons[key]
        assert "[aws_batch_executor] allowed_job_role_arns" in reasons[key] and "Fix:" in reasons[key]
    assert "the base of the task's derived definition" in reasons[derived_admin.ti.key]
    logged = {
        log.task_id: log.extra for log in executor._task_event_logs if log.event == "batch job not submitted"
    }
    assert f"jobRoleArn '{ADMIN}'" in logged["admin"] and f"jobRoleArn '{ADMIN}'" in logged["derived_admin"]
    [submitted] = batch_env.submitted_requests()
    assert submitted["jobDefinition"] == listed_definitions["etl"]
    assert batch_env.api_calls().get("registerjobdefinition", 0) == 0


def test_a_task_may_keep_an_exit_rule_but_not_batch_retries(make_executor, batch_env, monkeypatch):
    retrying = register(batch_env, f"retrying-{uuid.uuid4().hex[:8]}", retry={"attempts": 3})
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__JOB_DEFINITION", retrying)
    executor = make_executor()
    on_exit = {"evaluateOnExit": [{"onExitCode": "137", "action": "EXIT"}]}
    kept = workload("kept", run_id="retries", executor_config={"retryStrategy": {"attempts": 1, **on_exit}})
    retried = workload("retried", run_id="retries", executor_config={"retryStrategy": {"attempts": 2}})
    queue(executor, kept, retried)
    events = pump(executor, finished(kept.ti.key, retried.ti.key))

    assert final_states(events) == {kept.ti.key: "success", retried.ti.key: "failed"}
    assert "executor_config retryStrategy.attempts is 2" in reasons_of(events)[retried.ti.key]
    assert "use Airflow's retries on the task instead" in reasons_of(events)[retried.ti.key]
    [submitted] = batch_env.submitted_requests()
    assert submitted["retryStrategy"] == {"attempts": 1, **on_exit}, "over the definition's 3 attempts"


# ---------------------------------------------------------------- render


def render(monkeypatch, capsys, executor_config, *, offline: bool):
    """``airflow aws-batch-executor render`` on a task with this executor_config: (exit code, out, err)."""
    from airflow.sdk import BaseOperator

    task = BaseOperator(task_id="asks", executor_config=executor_config)
    monkeypatch.setattr(commands, "_task", lambda dag_id, task_id: task)
    args = argparse.Namespace(
        dag_id="dag", task_id="asks", run_id="manual__render", map_index=-1, try_number=1,
        offline=offline, team=None, verbose=None,
    )  # fmt: skip
    capsys.readouterr()
    try:
        commands.render(args)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("offline", [False, True], ids=["online", "offline"])
def test_render_prints_the_refusal_and_exits_1(batch_env, monkeypatch, capsys, offline):
    config = BatchJobOverrides(volumes=[HostVolume("root", "/host", source_path="/")])
    config["jobDefinitionOverrides"]["containerProperties"]["privileged"] = True
    code, out, _ = render(monkeypatch, capsys, config, offline=offline)

    assert code == 1
    assert out.startswith(
        "The executor would not submit dag.asks: executor_config asks for what a DAG author"
    )
    assert f"{PROPS}.privileged is true" in out and "allow_privileged_containers" in out
    assert f"{PROPS}.volumes[0].host.sourcePath '/'" in out and "allowed_host_paths" in out


def test_render_checks_a_listed_definitions_roles_online_and_says_offline_it_did_not(
    batch_env, listed_definitions, monkeypatch, capsys
):
    config = {"jobDefinition": listed_definitions["admin"]}
    code, out, _ = render(monkeypatch, capsys, config, offline=False)
    assert code == 1 and f"jobRoleArn '{ADMIN}'" in out and "allowed_job_role_arns" in out

    code, out, err = render(monkeypatch, capsys, config, offline=True)
    assert code == 0
    assert json.loads(out)["jobDefinition"] == listed_definitions["admin"]
    assert f"the roles of job definition {listed_definitions['admin']!r} are not checked" in err


def test_render_shows_the_one_attempt_every_job_gets(batch_env, monkeypatch, capsys):
    code, out, _ = render(monkeypatch, capsys, None, offline=False)
    assert code == 0 and json.loads(out)["retryStrategy"] == {"attempts": 1}
