"""deploy/cloudformation.yaml: cfn-lint clean, plus the properties we promise.

cfn-lint comes from PyPI (the dev group: ``scripts/bootstrap dev``); it is required on CI
(``CI=true``) and skipped elsewhere only when it is not installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "cloudformation.yaml"


def _executor_api_calls() -> set[str]:
    """Every AWS operation the executor's gateway (its only AWS caller) makes, as IAM actions."""
    source = (REPO / "airflow_batch_executor" / "aws" / "gateway.py").read_text()
    calls = re.findall(r'_call\(\s*"(batch|submit|urgent|logs|s3)",\s*"([a-z_]+)"', source)
    calls += [("batch", name) for name in re.findall(r'(?:get_paginator|_pages)\(\s*"([a-z_]+)"', source)]
    queue_source = (REPO / "airflow_batch_executor" / "aws" / "queue_gateway.py").read_text()
    calls += [("sqs", name) for name in re.findall(r"self\._sqs\(\)\.([a-z_]+)\(", queue_source)]
    service = {
        "batch": "batch",
        "submit": "batch",
        "urgent": "batch",
        "logs": "logs",
        "s3": "s3",
        "sqs": "sqs",
    }
    actions = {f"{service[client]}:{''.join(part.title() for part in op.split('_'))}" for client, op in calls}
    # DeleteMessageBatch is authorised as sqs:DeleteMessage, DeleteObjects as s3:DeleteObject.
    authorised_as = {
        "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
        "s3:DeleteObjects": "s3:DeleteObject",
        "s3:HeadObject": "s3:GetObject",
    }
    return {authorised_as.get(action, action) for action in actions}


# What the executor calls, plus TagResource (SubmitJob with tags is authorised as TagResource)
# and PassRole for the worker roles. HeadBucket (the health check's region lookup) needs
# s3:ListBucket, which the scheduler is not given: S3 names the bucket's region in the refusal.
SCHEDULER_ACTIONS = (_executor_api_calls() - {"s3:HeadBucket"}) | {"batch:TagResource", "iam:PassRole"}
WORKLOAD_CONDITION = "CreateWorkloadBucketCondition"


def with_workload_bucket(value: Any) -> Any:
    """The fragment as deployed with CreateWorkloadBucket=true (the true branch of each Fn::If on it).

    Fn::If on other conditions (such as HasTaskRoles) is kept for the tests that check both branches.
    """
    if isinstance(value, dict):
        branches = value.get("Fn::If")
        if branches is not None and len(value) == 1 and branches[0] == WORKLOAD_CONDITION:
            return with_workload_bucket(branches[1])
        return {k: with_workload_bucket(v) for k, v in value.items()}
    if isinstance(value, list):
        return [with_workload_bucket(v) for v in value if v != {"Ref": "AWS::NoValue"}]
    return value


# Fargate vCPU -> allowed memory (MiB), from the AWS Fargate task size table.
FARGATE_MEMORY = {
    "0.25": [512, 1024, 2048],
    "0.5": list(range(1024, 4096 + 1, 1024)),
    "1": list(range(2048, 8192 + 1, 1024)),
    "2": list(range(4096, 16384 + 1, 1024)),
    "4": list(range(8192, 30720 + 1, 1024)),
    "8": list(range(16384, 61440 + 1, 4096)),
    "16": list(range(32768, 122880 + 1, 8192)),
}


# ---------------------------------------------------------------- loading


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short-form tags into their long form."""


def _construct(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    if tag_suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)


@pytest.fixture(scope="module")
def resources(template) -> dict[str, Any]:
    return template["Resources"]


def of_type(resources: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r["Type"] == type_}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def walk(value: Any):
    """Every nested value (dicts, lists, scalars) of a template fragment."""
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


# ---------------------------------------------------------------- cfn-lint


def _cfn_lint() -> str:
    for candidate in (Path(sys.executable).parent / "cfn-lint", shutil.which("cfn-lint")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    if os.environ.get("CI") == "true":
        pytest.fail("cfn-lint is required on CI: scripts/bootstrap dev installs it")
    pytest.skip("cfn-lint not installed (scripts/bootstrap dev installs it); required on CI")


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_cfn_lint(), "--format", "parseable", "--", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cfn_lint_clean():
    proc = _lint(TEMPLATE)
    # cfn-lint exit status is a bit mask: 2 errors, 4 warnings, 8 informational.
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cfn_lint_actually_lints(tmp_path):
    """Guard against a no-op run: a broken copy of the template must be reported."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(TEMPLATE.read_text().replace("Type: FARGATE_SPOT", "Type: FARGATE_SPOTTY", 1))
    proc = _lint(broken)
    assert proc.returncode & 2, proc.stdout + proc.stderr


# ---------------------------------------------------------------- parameters


def test_parameters(template):
    params = template["Parameters"]
    for name in [
        "ImageUri",
        "SubnetIds",
        "SecurityGroupIds",
        "ExecutionApiServerUrl",
        "DatabaseConnSecretArn",
        "UseSpot",
        "JobVcpu",
        "JobMemory",
    ]:
        assert name in params, name
    assert params["SubnetIds"]["Type"] == "List<AWS::EC2::Subnet::Id>"
    assert params["SecurityGroupIds"]["Type"] == "List<AWS::EC2::SecurityGroup::Id>"
    assert params["UseSpot"]["AllowedValues"] == ["true", "false"]
    assert params["JobVcpu"]["AllowedValues"] == list(FARGATE_MEMORY)
    default_memory = int(params["JobMemory"]["Default"])
    assert default_memory in FARGATE_MEMORY[params["JobVcpu"]["Default"]]


def test_rules_enforce_fargate_pairs(template):
    """One rule per vCPU value, asserting exactly the Fargate memory sizes."""
    seen = {}
    for rule in template["Rules"].values():
        vcpu = rule["RuleCondition"]["Fn::Equals"][1]
        (assertion,) = rule["Assertions"]
        allowed, ref = assertion["Assert"]["Fn::Contains"]
        assert ref == {"Ref": "JobMemory"}
        seen[vcpu] = [int(v) for v in allowed]
    assert seen == FARGATE_MEMORY


# ---------------------------------------------------------------- compute


def test_fargate_compute_environments(template, resources):
    envs = of_type(resources, "AWS::Batch::ComputeEnvironment")
    types = {name: env["Properties"]["ComputeResources"]["Type"] for name, env in envs.items()}
    assert sorted(types.values()) == ["FARGATE", "FARGATE_SPOT"]
    spot = next(name for name, t in types.items() if t == "FARGATE_SPOT")
    on_demand = next(name for name, t in types.items() if t == "FARGATE")
    assert "Condition" not in envs[on_demand]
    condition = envs[spot]["Condition"]
    assert template["Conditions"][condition] == {"Fn::Equals": [{"Ref": "UseSpot"}, "true"]}

    (queue,) = of_type(resources, "AWS::Batch::JobQueue").values()
    cond, with_spot, without_spot = queue["Properties"]["ComputeEnvironmentOrder"]["Fn::If"]
    assert cond == condition
    ordered = [e["ComputeEnvironment"]["Ref"] for e in sorted(with_spot, key=lambda e: e["Order"])]
    assert ordered == [spot, on_demand], "Spot first, on-demand second"
    assert [e["ComputeEnvironment"]["Ref"] for e in without_spot] == [on_demand]


# ---------------------------------------------------------------- job definition


@pytest.fixture(scope="module")
def container(resources) -> dict[str, Any]:
    (job_def,) = of_type(resources, "AWS::Batch::JobDefinition").values()
    assert job_def["Properties"]["PlatformCapabilities"] == ["FARGATE"]
    return job_def["Properties"]["ContainerProperties"]


def _env_entries(container) -> list[dict[str, Any]]:
    entries = []
    for item in container["Environment"]:
        if "Fn::If" in item:
            entries.extend(e for e in item["Fn::If"][1:] if isinstance(e, dict) and "Name" in e)
        else:
            entries.append(item)
    return entries


def test_no_plain_text_db_connection(container):
    for entry in _env_entries(container):
        assert "SQL_ALCHEMY" not in entry["Name"]
        assert not re.search(r"PASSWORD|SECRET|CONN", entry["Name"]), entry["Name"]
        for value in walk(entry["Value"]):
            if isinstance(value, str):
                assert not re.search(r"(postgres|mysql|sqlite)[a-z0-9+]*://", value), value


def test_db_connection_through_secrets(container):
    secrets = {s["Name"]: s["ValueFrom"] for s in container["Secrets"]}
    assert secrets == {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": {"Ref": "DatabaseConnSecretArn"}}


def test_worker_environment(container):
    env = {e["Name"]: e["Value"] for e in _env_entries(container)}
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == {"Ref": "ExecutionApiServerUrl"}
    assert env["S3_URI"] == {"Ref": "DagsS3Uri"}


def test_job_definition_roles_logs_and_image(resources, container):
    assert container["Image"] == {"Ref": "ImageUri"}
    assert container["ExecutionRoleArn"] == {"Fn::GetAtt": ["WorkerExecutionRole", "Arn"]}
    assert container["JobRoleArn"] == {"Fn::GetAtt": ["WorkerJobRole", "Arn"]}
    logs = container["LogConfiguration"]
    assert logs["LogDriver"] == "awslogs"
    assert logs["Options"]["awslogs-group"] == {"Ref": "WorkerLogGroup"}
    assert "awslogs-stream-prefix" in logs["Options"]  # mandatory on Fargate
    assert resources["WorkerLogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
    requirements = {r["Type"]: r["Value"] for r in container["ResourceRequirements"]}
    assert requirements == {"VCPU": {"Ref": "JobVcpu"}, "MEMORY": {"Ref": "JobMemory"}}


def test_batch_does_not_retry_on_its_own(resources):
    """Resubmits are the executor's decision (only for jobs that never started)."""
    (job_def,) = of_type(resources, "AWS::Batch::JobDefinition").values()
    assert job_def["Properties"]["RetryStrategy"] == {"Attempts": 1}


def test_execution_role_reads_only_the_db_secret(resources):
    role = resources["WorkerExecutionRole"]["Properties"]
    principals = [s["Principal"]["Service"] for s in role["AssumeRolePolicyDocument"]["Statement"]]
    assert principals == ["ecs-tasks.amazonaws.com"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert statements == [
        {
            "Sid": "ReadMetadataDbConnection",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": {"Ref": "DatabaseConnSecretArn"},
        }
    ]


# ---------------------------------------------------------------- scheduler policy


@pytest.fixture(scope="module")
def scheduler_statements(resources) -> list[dict[str, Any]]:
    (policy,) = of_type(resources, "AWS::IAM::ManagedPolicy").values()
    return with_workload_bucket(policy["Properties"]["PolicyDocument"]["Statement"])


def test_scheduler_policy_actions_exactly(scheduler_statements):
    actions = [a for s in scheduler_statements for a in as_list(s["Action"])]
    assert all(s["Effect"] == "Allow" for s in scheduler_statements)
    assert len(actions) == len(set(actions)), "an action is granted twice"
    assert set(actions) == SCHEDULER_ACTIONS
    assert not any("*" in a for a in actions)


def test_scheduler_policy_wildcards_only_where_unavoidable(scheduler_statements):
    no_resource_level = {
        "batch:DescribeJobs",
        "batch:ListJobs",
        "batch:DescribeJobQueues",
        "batch:DescribeJobDefinitions",
    }
    for statement in scheduler_statements:
        if "*" in as_list(statement["Resource"]):
            assert set(as_list(statement["Action"])) <= no_resource_level, statement


def test_scheduler_policy_log_and_passrole_scoping(scheduler_statements):
    by_action = {a: s for s in scheduler_statements for a in as_list(s["Action"])}
    logs = by_action["logs:GetLogEvents"]
    (resource,) = as_list(logs["Resource"])
    assert "${WorkerLogGroup}" in resource["Fn::Sub"]

    passrole = by_action["iam:PassRole"]
    worker_roles = [{"Fn::GetAtt": ["WorkerExecutionRole", "Arn"]}, {"Fn::GetAtt": ["WorkerJobRole", "Arn"]}]
    condition, with_task_roles, without = passrole["Resource"]["Fn::If"]
    assert condition == "HasTaskRoles" and without == worker_roles
    assert with_task_roles == {
        "Fn::Split": [",", {"Fn::Join": [",", [*worker_roles, {"Ref": "TaskRoleArns"}]]}]
    }
    services = passrole["Condition"]["StringEquals"]["iam:PassedToService"]
    assert set(as_list(services)) <= {"batch.amazonaws.com", "ecs-tasks.amazonaws.com"}

    submit = by_action["batch:SubmitJob"]
    assert {"Fn::GetAtt": ["JobQueue", "JobQueueArn"]} in submit["Resource"]


def test_derived_definitions_are_registered_only_under_the_worker_definitions_name(scheduler_statements):
    by_action = {a: s for s in scheduler_statements for a in as_list(s["Action"])}
    derived = "job-definition/${AWS::StackName}-worker-*"
    for action in ("batch:RegisterJobDefinition", "batch:DeregisterJobDefinition"):
        (resource,) = as_list(by_action[action]["Resource"])
        assert resource["Fn::Sub"].endswith(derived), action
    tag_and_submit = [r["Fn::Sub"] for r in by_action["batch:TagResource"]["Resource"] if "Fn::Sub" in r]
    assert any(r.endswith(derived) for r in tag_and_submit), "tag-on-create of a derived definition"


# ---------------------------------------------------------------- outputs


def test_outputs(template):
    outputs = template["Outputs"]
    for name in ["JobQueue", "JobDefinition", "Region", "SchedulerPolicyArn", "AirflowEnvironment"]:
        assert name in outputs, name
    assert outputs["Region"]["Value"] == {"Ref": "AWS::Region"}
    assert outputs["SchedulerPolicyArn"]["Value"] == {"Ref": "SchedulerPolicy"}
    condition, with_bucket, without_bucket = outputs["AirflowEnvironment"]["Value"]["Fn::If"]
    assert condition == WORKLOAD_CONDITION
    common = [
        "AIRFLOW__CORE__EXECUTOR",
        "AIRFLOW__AWS_BATCH_EXECUTOR__REGION_NAME",
        "AIRFLOW__AWS_BATCH_EXECUTOR__JOB_QUEUE",
        "AIRFLOW__AWS_BATCH_EXECUTOR__JOB_DEFINITION",
        "AIRFLOW__AWS_BATCH_EXECUTOR__STATUS_QUEUE_URL",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    ]
    for branch, names in (
        (without_bucket, common),
        (with_bucket, [*common, "AIRFLOW__AWS_BATCH_EXECUTOR__WORKLOAD_TRANSPORT"]),
    ):
        text = branch["Fn::Sub"]
        assert re.findall(r"(AIRFLOW__\w+)=", text) == names
        assert "AIRFLOW__CORE__EXECUTOR=airflow_batch_executor.AwsBatchExecutor" in text
        assert "\n" not in text.strip(), "one line, so that `export $(...)` works"
    assert "WORKLOAD_TRANSPORT=s3://${WorkloadBucket}/${WorkloadKeyPrefix}" in with_bucket["Fn::Sub"]
    assert outputs["WorkloadTransport"]["Condition"] == WORKLOAD_CONDITION


def test_output_names_match_the_resources(template, resources):
    """JobQueue/JobDefinition outputs are the names the resources are created with."""
    queue_name = resources["JobQueue"]["Properties"]["JobQueueName"]
    job_def_name = resources["WorkerJobDefinition"]["Properties"]["JobDefinitionName"]
    assert template["Outputs"]["JobQueue"]["Value"] == queue_name
    assert template["Outputs"]["JobDefinition"]["Value"] == job_def_name


def test_the_derived_action_list_sees_every_gateway_call():
    assert _executor_api_calls() == {
        "batch:SubmitJob",
        "batch:DescribeJobs",
        "batch:TerminateJob",
        "batch:ListJobs",
        "batch:DescribeJobQueues",
        "batch:DescribeJobDefinitions",
        "batch:GetJobQueueSnapshot",
        "batch:RegisterJobDefinition",
        "batch:DeregisterJobDefinition",
        "logs:GetLogEvents",
        "batch:TagResource",
        "s3:PutObject",
        "s3:GetObject",
        "s3:DeleteObject",
        "s3:HeadBucket",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
    }


# ---------------------------------------------------------------- workload bucket

WORKLOAD_OBJECTS = {
    "Fn::Join": [
        "",
        [
            {"Fn::Sub": "${WorkloadBucket.Arn}/${WorkloadKeyPrefix}/"},
            {"Fn::If": ["HasTeam", {"Fn::Sub": "teams/${TeamName}"}, "global"]},
            "/*",
        ],
    ]
}
"""This stack's executor's own prefix: the global one's, or its team's (see S3Location.scoped)."""


def test_the_workload_bucket_is_optional(template, resources):
    assert template["Parameters"]["CreateWorkloadBucket"]["Default"] == "false"
    assert template["Conditions"][WORKLOAD_CONDITION] == {
        "Fn::Equals": [{"Ref": "CreateWorkloadBucket"}, "true"]
    }
    for name in ("WorkloadBucket", "WorkloadBucketPolicy", "WorkerJobWorkloadPolicy"):
        assert resources[name]["Condition"] == WORKLOAD_CONDITION, name


def test_the_workload_bucket_is_encrypted_private_and_expires_leftovers(resources):
    bucket = resources["WorkloadBucket"]["Properties"]
    [rule] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    [lifecycle] = bucket["LifecycleConfiguration"]["Rules"]
    assert lifecycle["Status"] == "Enabled" and lifecycle["ExpirationInDays"] == 1
    assert "Prefix" not in lifecycle and "Filter" not in lifecycle  # every object, health-check probes too


def test_the_workload_bucket_refuses_plain_http(resources):
    policy = resources["WorkloadBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "WorkloadBucket"}
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*" and statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == [
        {"Fn::GetAtt": ["WorkloadBucket", "Arn"]},
        {"Fn::Sub": "${WorkloadBucket.Arn}/*"},
    ]


def test_the_scheduler_writes_reads_and_deletes_only_under_its_executors_prefix(scheduler_statements):
    s3 = [s for s in scheduler_statements if any(a.startswith("s3:") for a in as_list(s["Action"]))]
    [statement] = s3
    assert statement["Effect"] == "Allow"
    assert sorted(as_list(statement["Action"])) == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    assert as_list(statement["Resource"]) == [WORKLOAD_OBJECTS]


def test_the_job_role_reads_and_deletes_only_under_its_executors_prefix(resources):
    policy = resources["WorkerJobWorkloadPolicy"]["Properties"]
    assert policy["RoleName"] == {"Ref": "WorkerJobRole"}
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert sorted(as_list(statement["Action"])) == ["s3:DeleteObject", "s3:GetObject"]
    assert as_list(statement["Resource"]) == [WORKLOAD_OBJECTS]


# ---------------------------------------------------------------- job status events


def test_status_events_of_this_stacks_job_queue_reach_its_queue(resources):
    (rule,) = of_type(resources, "AWS::Events::Rule").values()
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.batch"]
    assert pattern["detail-type"] == ["Batch Job State Change", "Batch Job Queue Blocked"]
    assert pattern["detail"]["jobQueue"] == [{"Fn::GetAtt": ["JobQueue", "JobQueueArn"]}]
    assert rule["Properties"]["Targets"] == [
        {"Id": "status-queue", "Arn": {"Fn::GetAtt": ["StatusQueue", "Arn"]}}
    ]


def test_the_status_queue_has_a_dead_letter_queue_beyond_the_executors_receive_limit(resources):
    from airflow_batch_executor.supervisor import UNTRACKED_EVENT_RECEIVES

    redrive = resources["StatusQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["StatusDeadLetterQueue", "Arn"]}
    assert redrive["maxReceiveCount"] > UNTRACKED_EVENT_RECEIVES


def test_only_this_stacks_rule_may_send_to_the_status_queue(resources):
    (policy,) = of_type(resources, "AWS::SQS::QueuePolicy").values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Fn::GetAtt": ["StatusQueue", "Arn"]}
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["StatusEventRule", "Arn"]}}
    }


def test_the_scheduler_reads_only_the_status_queue(scheduler_statements):
    by_action = {a: s for s in scheduler_statements for a in as_list(s["Action"])}
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage"):
        assert by_action[action]["Resource"] == {"Fn::GetAtt": ["StatusQueue", "Arn"]}, action
