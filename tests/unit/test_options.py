from __future__ import annotations

import pytest

from airflow_batch_executor.errors import OptionError
from airflow_batch_executor.options import SECTION, connection_options, load_options, option_defaults
from airflow_batch_executor.provider_info import load_config_description

from .helpers import REQUIRED, FakeConf


def test_defaults_come_from_the_config_template():
    opts = load_options(FakeConf(**REQUIRED))
    assert opts.conn_id == "aws_default"
    assert opts.max_submit_job_attempts == 3
    assert opts.check_health_on_startup is True
    assert opts.terminate_jobs_on_shutdown is False
    assert opts.submit_rate_limit == 40.0
    assert opts.submit_job_kwargs == {}
    assert opts.max_pending_seconds == 0
    assert opts.status_queue_url is None
    assert opts.status_reconcile_interval == 120
    assert opts.status_receive_concurrency == 8


def test_a_status_queue_url_is_taken_as_given():
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/airflow-batch-status"
    assert load_options(FakeConf(**REQUIRED, status_queue_url=url)).status_queue_url == url


def test_every_documented_option_is_read():
    documented = set(load_config_description()[SECTION]["options"])
    assert documented == set(option_defaults())
    read = set(load_options(FakeConf(**REQUIRED)).__dataclass_fields__) - {"team_name"}
    assert documented == read, "team_name is the executor's team, not an option"


def test_each_option_has_description_type_example_and_default():
    for name, spec in load_config_description()[SECTION]["options"].items():
        assert spec["description"].strip(), name
        assert spec["type"] in {"string", "integer", "boolean", "float"}, name
        assert "example" in spec and "default" in spec, name


@pytest.mark.parametrize(
    "values, option, text",
    [
        ({"job_definition": "jd"}, "job_queue", "AIRFLOW__AWS_BATCH_EXECUTOR__JOB_QUEUE"),
        ({"job_queue": "q"}, "job_definition", "AIRFLOW__AWS_BATCH_EXECUTOR__JOB_DEFINITION"),
        ({**REQUIRED, "submit_job_kwargs": "{not json"}, "submit_job_kwargs", "not valid JSON"),
        ({**REQUIRED, "submit_job_kwargs": "[1, 2]"}, "submit_job_kwargs", "not an object"),
        ({**REQUIRED, "max_submit_job_attempts": "three"}, "max_submit_job_attempts", "not a number"),
        ({**REQUIRED, "max_submit_job_attempts": "0"}, "max_submit_job_attempts", "below the minimum"),
        ({**REQUIRED, "check_health_on_startup": "maybe"}, "check_health_on_startup", "not a boolean"),
        ({**REQUIRED, "submit_rate_limit": "-1"}, "submit_rate_limit", "below the minimum"),
        ({**REQUIRED, "submit_concurrency": "1.5"}, "submit_concurrency", "not a number"),
        ({**REQUIRED, "workload_transport": "s3://"}, "workload_transport", "without a bucket"),
        ({**REQUIRED, "workload_transport": "s3:///prefix"}, "workload_transport", "without a bucket"),
        ({**REQUIRED, "workload_transport": "sqs://queue"}, "workload_transport", "neither 'command'"),
        ({**REQUIRED, "workload_transport": "s3://Bad_Bucket/x"}, "workload_transport", "not a valid S3"),
        ({**REQUIRED, "workload_kms_key_id": "alias/k"}, "workload_kms_key_id", "workload_transport is"),
        ({**REQUIRED, "status_queue_url": "airflow-status"}, "status_queue_url", "not an SQS queue URL"),
        ({**REQUIRED, "status_reconcile_interval": "0.5"}, "status_reconcile_interval", "below the minimum"),
        ({**REQUIRED, "status_receive_concurrency": "0"}, "status_receive_concurrency", "below the minimum"),
        (
            {**REQUIRED, "status_receive_concurrency": "500"},
            "status_receive_concurrency",
            "above the maximum",
        ),
        ({**REQUIRED, "status_receive_concurrency": "many"}, "status_receive_concurrency", "not a number"),
    ],
)
def test_bad_options_name_the_option_and_the_fix(values, option, text):
    with pytest.raises(OptionError) as err:
        load_options(FakeConf(**values))
    assert err.value.option == option
    assert f"[aws_batch_executor] {option}" in str(err.value)
    assert text in str(err.value)
    assert "Fix:" in str(err.value)


@pytest.mark.parametrize(
    "value, bucket, prefix, uri",
    [
        ("s3://workloads", "workloads", "global", "s3://workloads/global"),
        ("s3://workloads/", "workloads", "global", "s3://workloads/global"),
        (
            "s3://workloads/airflow/batch/",
            "workloads",
            "airflow/batch/global",
            "s3://workloads/airflow/batch/global",
        ),
    ],
)
def test_workload_transport_s3_location_is_the_global_executors_own_part(value, bucket, prefix, uri):
    opts = load_options(FakeConf(**REQUIRED, workload_transport=value, workload_kms_key_id="alias/k"))
    location = opts.workload_transport
    assert (location.bucket, location.prefix, str(location)) == (bucket, prefix, uri)
    assert location.key("job.json") == f"{prefix}/job.json"
    assert opts.workload_kms_key_id == "alias/k"


def test_each_teams_workloads_have_a_prefix_of_their_own():
    """Job roles can then be scoped to their team's workloads (deploy/cloudformation.yaml TeamName)."""
    from airflow_batch_executor.options import S3Location

    shared = S3Location("workloads", "airflow")
    assert shared.scoped("team_a").prefix == "airflow/teams/team_a"
    assert shared.scoped("team_b").prefix == "airflow/teams/team_b"
    assert shared.scoped(None).prefix == "airflow/global"
    assert not shared.scoped("team_a").key("x").startswith(shared.scoped(None).prefix + "/")


def test_workload_transport_defaults_to_the_command():
    assert load_options(FakeConf(**REQUIRED)).workload_transport is None
    assert load_options(FakeConf(**REQUIRED, workload_transport="command")).workload_transport is None


def test_real_airflow_config_from_environment(monkeypatch):
    from airflow.executors.base_executor import ExecutorConf

    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__JOB_QUEUE", "env-queue")
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__JOB_DEFINITION", "env-jd")
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__SUBMIT_RATE_LIMIT", "12.5")
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__SUBMIT_JOB_KWARGS", '{"tags": {"a": "b"}}')
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__REGION_NAME", "eu-west-1")
    opts = load_options(ExecutorConf())
    assert (opts.job_queue, opts.job_definition, opts.submit_rate_limit) == ("env-queue", "env-jd", 12.5)
    assert opts.submit_job_kwargs == {"tags": {"a": "b"}}
    assert connection_options(ExecutorConf()) == ("aws_default", "eu-west-1")


def test_a_teams_bad_option_names_the_team_and_its_own_variable():
    with pytest.raises(OptionError) as err:
        load_options(FakeConf(team_name="team_a", job_definition="jd"))
    message = str(err.value)
    assert err.value.option == "job_queue" and err.value.team == "team_a"
    assert "[aws_batch_executor] job_queue of team 'team_a' is not set" in message
    assert "AIRFLOW__TEAM_A___AWS_BATCH_EXECUTOR__JOB_QUEUE" in message
    assert "[team_a=aws_batch_executor]" in message


def test_a_teams_options_are_its_own(monkeypatch):
    from airflow.executors.base_executor import ExecutorConf

    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__JOB_QUEUE", "global-queue")
    monkeypatch.setenv("AIRFLOW__AWS_BATCH_EXECUTOR__JOB_DEFINITION", "global-jd")
    monkeypatch.setenv("AIRFLOW__TEAM_A___AWS_BATCH_EXECUTOR__JOB_QUEUE", "team-a-queue")
    monkeypatch.setenv("AIRFLOW__TEAM_A___AWS_BATCH_EXECUTOR__JOB_DEFINITION", "team-a-jd")
    monkeypatch.setenv("AIRFLOW__TEAM_A___AWS_BATCH_EXECUTOR__SUBMIT_RATE_LIMIT", "5")
    team = load_options(ExecutorConf("team_a"))
    assert (team.job_queue, team.job_definition, team.submit_rate_limit) == ("team-a-queue", "team-a-jd", 5)
    assert team.team_name == "team_a"
    everyone = load_options(ExecutorConf())
    assert (everyone.job_queue, everyone.submit_rate_limit, everyone.team_name) == ("global-queue", 40, None)
    with pytest.raises(OptionError, match="of team 'team_b'"):
        load_options(ExecutorConf("team_b"))
