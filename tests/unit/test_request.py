from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_batch_executor.batch_facts import MAX_SUBMIT_PAYLOAD_BYTES as MAX_PAYLOAD_BYTES
from airflow_batch_executor.errors import OptionError, TaskConfigError
from airflow_batch_executor.naming import WorkloadIdentity, job_name
from airflow_batch_executor.options import ExecutorOptions
from airflow_batch_executor.request_factory import (
    EXECUTION_API_ENV,
    EXECUTOR_CONTAINER_ENV,
    RequestFactory,
    base_request,
    deep_merge,
)
from airflow_batch_executor.task_specs import JobSpec

IDENTITY = WorkloadIdentity(dag_id="dag", task_id="task", run_id="run1", try_number=1)
COMMAND = [
    "python",
    "-m",
    "airflow.sdk.execution_time.execute_workload",
    "--json-string",
    '{"token": "secret"}',
]


def options(**overrides) -> ExecutorOptions:
    values = {
        "conn_id": "aws_default",
        "region_name": "us-east-1",
        "job_queue": "q-default",
        "job_definition": "jd",
        "job_name": None,
        "submit_job_kwargs": {},
        "max_submit_job_attempts": 3,
        "check_health_on_startup": True,
        "terminate_jobs_on_shutdown": False,
        "submit_rate_limit": 40.0,
        "submit_concurrency": 4,
        "status_poll_interval": 2.0,
        "max_pending_seconds": 0.0,
        "share_identifier": None,
        "task_log_lines": 500,
    }
    values.update(overrides)
    return ExecutorOptions(**values)


def build(executor_config=None, queue="default", base_opts=None, prefix=None):
    factory = RequestFactory(
        base_opts or options(job_name=prefix), api_url="http://api:8080/execution/", default_queue="default"
    )
    spec = JobSpec(identity=IDENTITY, command=COMMAND, airflow_queue=queue, executor_config=executor_config)
    return factory.build(spec)


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
    room = MAX_PAYLOAD_BYTES - len(json.dumps(request, separators=(",", ":")).encode()) - 40
    request = build(
        executor_config={"containerOverrides": {"environment": [{"name": "PAD", "value": "x" * room}]}}
    )
    assert len(json.dumps(request, separators=(",", ":")).encode()) <= MAX_PAYLOAD_BYTES


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


json_leaf = st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3))
json_tree = st.recursive(
    json_leaf, lambda children: st.dictionaries(st.text(max_size=4), children, max_size=4), max_leaves=12
)
dicts = st.dictionaries(st.text(max_size=4), json_tree, max_size=5)


@given(dicts, dicts)
def test_merge_properties(base, override):
    merged = deep_merge(base, override)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            assert merged[key] == deep_merge(base[key], value)
        else:
            assert merged[key] == value
    for key in base.keys() - override.keys():
        assert merged[key] == base[key]
    assert deep_merge(merged, override) == merged
    assert deep_merge(base, {}) == base


@given(dicts, dicts)
def test_merge_never_mutates_inputs(base, override):
    before = json.dumps([base, override], sort_keys=True)
    merged = deep_merge(base, override)
    for value in merged.values():
        if isinstance(value, dict):
            value["mutated"] = 1
    assert json.dumps([base, override], sort_keys=True) == before


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
