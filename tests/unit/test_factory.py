from __future__ import annotations

import json

import pytest

from airflow_batch_executor.errors import OptionError, TaskConfigError
from airflow_batch_executor.job_contract import MAX_SUBMIT_PAYLOAD_BYTES
from airflow_batch_executor.requests.factory import (
    EXECUTION_API_ENV,
    EXECUTOR_CONTAINER_ENV,
    RequestFactory,
    base_request,
)
from airflow_batch_executor.requests.naming import job_name
from airflow_batch_executor.requests.task_specs import JobSpec

from .helpers import COMMAND, IDENTITY, build, options


def env(request) -> dict[str, str]:
    return {e["name"]: e["value"] for e in request["containerOverrides"]["environment"]}


def test_minimal_request_has_command_env_name_and_tags():
    request = build()
    assert request["jobQueue"] == "q-default"
    assert request["jobDefinition"] == "jd"
    assert request["jobName"] == job_name(IDENTITY)
    assert request["containerOverrides"]["command"] == COMMAND
    assert env(request) == {EXECUTOR_CONTAINER_ENV: "true", EXECUTION_API_ENV: "http://api:8080/execution/"}
    assert request["tags"]["airflow.dag_id"] == "dag"
    assert request["tags"]["airflow.try_number"] == "1"


def test_precedence_options_then_kwargs_then_executor_config():
    opts = options(
        submit_job_kwargs={
            "jobQueue": "q-kwargs",
            "retryStrategy": {"evaluateOnExit": [{"onExitCode": "137", "action": "EXIT"}]},
            "containerOverrides": {
                "environment": [{"name": "A", "value": "kwargs"}],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
            },
            "tags": {"team": "data"},
        }
    )
    request = build(
        executor_config={
            "containerOverrides": {"resourceRequirements": [{"type": "MEMORY", "value": "4096"}]},
            "tags": {"cost": "x"},
        },
        base_opts=opts,
    )
    assert request["jobQueue"] == "q-kwargs"
    assert request["retryStrategy"] == {
        "attempts": 1,
        "evaluateOnExit": [{"onExitCode": "137", "action": "EXIT"}],
    }, "merged over the executor's one attempt"
    assert request["containerOverrides"]["resourceRequirements"] == [{"type": "MEMORY", "value": "4096"}]
    assert env(request)["A"] == "kwargs"
    assert request["tags"]["team"] == "data" and request["tags"]["cost"] == "x"


def test_user_environment_survives_and_ours_is_appended():
    request = build(
        executor_config={"containerOverrides": {"environment": [{"name": "MY_VAR", "value": "1"}]}}
    )
    names = [e["name"] for e in request["containerOverrides"]["environment"]]
    assert names == ["MY_VAR", EXECUTOR_CONTAINER_ENV, EXECUTION_API_ENV]


def test_user_execution_api_url_is_kept():
    request = build(
        executor_config={
            "containerOverrides": {"environment": [{"name": EXECUTION_API_ENV, "value": "http://mine"}]}
        }
    )
    assert env(request)[EXECUTION_API_ENV] == "http://mine"
    assert [e["name"] for e in request["containerOverrides"]["environment"]].count(EXECUTION_API_ENV) == 1


def test_airflow_queue_routes_to_a_batch_queue_and_executor_config_wins():
    assert build(queue="gpu-queue")["jobQueue"] == "gpu-queue"
    assert build(queue="default")["jobQueue"] == "q-default"
    assert build(queue="gpu-queue", executor_config={"jobQueue": "explicit"})["jobQueue"] == "explicit"
    spec = JobSpec(identity=IDENTITY, command=[], airflow_queue="spot", executor_config=None)
    assert RequestFactory(options(), api_url="u", default_queue="default").job_queue(spec) == "spot"


def test_prefix_and_identity_tags_cannot_be_overridden():
    request = build(executor_config={"jobName": "mine", "tags": {"airflow.dag_id": "spoof"}}, prefix="prod")
    assert request["jobName"].startswith("prod-dag-task-try1-")
    assert request["tags"]["airflow.dag_id"] == "dag"


@pytest.mark.parametrize(
    "config, message",
    [
        ({"containerOverrides": {"command": ["echo"]}}, "sets containerOverrides.command"),
        ("not a dict", "executor_config is a str"),
        ({"unknownKey": 1}, "Unknown parameter"),
        ({"Tags": [{"Key": "a", "Value": "b"}]}, "Unknown parameter"),
        ({"retryStrategy": {"attempts": "three"}}, "Invalid type"),
        ({"timeout": {"attemptDurationSeconds": 30}}, "at least 60 seconds"),
        ({"tags": {f"k{i}": "v" for i in range(50)}}, "tags are set"),
        (
            {"containerOverrides": {"environment": [{"name": "BIG", "value": "x" * 40000}]}},
            "over AWS Batch's 30720-byte limit",
        ),
    ],
)
def test_bad_executor_config_fails_only_that_task_with_a_fix(config, message):
    with pytest.raises(TaskConfigError) as err:
        build(executor_config=config)
    assert message in str(err.value)
    assert "Fix:" in str(err.value)


def test_payload_just_under_the_limit_is_accepted():
    request = build()
    room = MAX_SUBMIT_PAYLOAD_BYTES - len(json.dumps(request, separators=(",", ":")).encode()) - 40
    request = build(
        executor_config={"containerOverrides": {"environment": [{"name": "PAD", "value": "x" * room}]}}
    )
    assert len(json.dumps(request, separators=(",", ":")).encode()) <= MAX_SUBMIT_PAYLOAD_BYTES


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"containerOverrides": {"command": ["x"]}}, "sets containerOverrides.command"),
        ({"Tags": [{"Key": "a"}]}, "Unknown parameter"),
        ({"timeout": {"attemptDurationSeconds": 10}}, "at least 60 seconds"),
        ({"shareIdentifier": 5}, "Invalid type"),
    ],
)
def test_bad_submit_job_kwargs_is_an_option_error(kwargs, message):
    with pytest.raises(OptionError) as err:
        base_request(options(submit_job_kwargs=kwargs))
    assert err.value.option == "submit_job_kwargs"
    assert message in str(err.value)


def build_with_timeout(seconds, executor_config=None):
    spec = JobSpec(
        identity=IDENTITY,
        command=COMMAND,
        airflow_queue="default",
        executor_config=executor_config,
        execution_timeout=seconds,
    )
    return RequestFactory(options(), api_url="u", default_queue="default").build(spec)


def test_execution_timeout_becomes_the_attempt_duration_with_a_margin():
    assert build_with_timeout(3600)["timeout"] == {"attemptDurationSeconds": 3720}
    assert build_with_timeout(0.5)["timeout"] == {"attemptDurationSeconds": 121}
    assert "timeout" not in build_with_timeout(None)


def test_an_explicit_timeout_wins_over_execution_timeout():
    request = build_with_timeout(3600, executor_config={"timeout": {"attemptDurationSeconds": 90}})
    assert request["timeout"] == {"attemptDurationSeconds": 90}


def test_a_teams_jobs_carry_the_team_tag_and_a_teams_bad_kwargs_name_the_team():
    request = build(base_opts=options(team_name="team_a", submit_job_kwargs={"tags": {"airflow.team": "x"}}))
    assert request["tags"]["airflow.team"] == "team_a", "the executor's team wins over configuration"
    assert "airflow.team" not in build()["tags"]
    with pytest.raises(OptionError) as err:
        base_request(options(team_name="team_b", submit_job_kwargs={"Tags": []}))
    assert "submit_job_kwargs of team 'team_b'" in str(err.value)
    assert "AIRFLOW__TEAM_B___AWS_BATCH_EXECUTOR__SUBMIT_JOB_KWARGS" in str(err.value)
