"""Creates the ready-to-use Batch environment inside the local server, with real boto3 calls.

Going through the API (rather than poking moto's backends) keeps the environment honest: it is
exactly what a user would have to create in AWS, and it proves the server accepts it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

ClientFactory = Callable[[str], Any]

COMPUTE_ENVIRONMENT = "airflow-local-fargate"
JOB_QUEUE = "airflow-local-queue"
SECOND_JOB_QUEUE = "airflow-local-queue-2"
JOB_DEFINITION = "airflow-local-job"
LOG_GROUP = "/aws/batch/job"
WORKLOAD_BUCKET = "airflow-local-workloads"
STATUS_QUEUE = "airflow-local-status"
STATUS_QUEUE_VISIBILITY_SECONDS = 2
IMAGE = "local/airflow-task:latest"
SERVICE_ROLE = "airflow-local-batch-service-role"
EXECUTION_ROLE = "airflow-local-batch-execution-role"
FAKE_ACCESS_KEY = "testing"
FAKE_SECRET_KEY = "testing"


@dataclass(frozen=True)
class ReadyEnvironment:
    """Names and ARNs of everything created, plus how to reach it."""

    endpoint_url: str
    region: str
    compute_environment: str
    compute_environment_arn: str
    job_queue: str
    job_queue_arn: str
    second_job_queue: str
    second_job_queue_arn: str
    job_definition: str
    job_definition_arn: str
    log_group: str
    subnet_id: str
    security_group_id: str
    execution_role_arn: str
    workload_bucket: str
    """An S3 bucket for ``[aws_batch_executor] workload_transport = s3://<bucket>/<prefix>``."""
    status_queue_url: str
    """Where the local Batch publishes "Batch Job State Change" events (when publish_events is on)."""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def settings(self) -> dict[str, str]:
        """The environment variables that point Airflow and boto3 at this local Batch."""
        return {
            "AIRFLOW__AWS_BATCH_EXECUTOR__REGION_NAME": self.region,
            "AIRFLOW__AWS_BATCH_EXECUTOR__JOB_QUEUE": self.job_queue,
            "AIRFLOW__AWS_BATCH_EXECUTOR__JOB_DEFINITION": self.job_definition,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
            "AWS_DEFAULT_REGION": self.region,
        }

    def export_lines(self) -> list[str]:
        """``settings()`` as shell ``export`` lines, ready to paste."""
        return [f"export {name}={value}" for name, value in self.settings().items()]


def create_environment(client: ClientFactory, endpoint_url: str, region: str) -> ReadyEnvironment:
    """Create network, roles, a Fargate compute environment, two queues, a job definition, logs,
    and a bucket for handing workloads to jobs out of band.

    The compute environment is Fargate so that moto neither launches EC2 instances for it nor
    needs Docker; jobs never touch the network resources, which exist only because Batch
    requires them.
    """
    ec2, iam, batch, logs = client("ec2"), client("iam"), client("batch"), client("logs")

    vpc_id = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
    security_group_id = ec2.create_security_group(
        GroupName="airflow-local-batch", Description="local Batch jobs", VpcId=vpc_id
    )["GroupId"]

    service_role_arn = _create_role(iam, SERVICE_ROLE, "batch.amazonaws.com")
    execution_role_arn = _create_role(iam, EXECUTION_ROLE, "ecs-tasks.amazonaws.com")

    compute_environment_arn = batch.create_compute_environment(
        computeEnvironmentName=COMPUTE_ENVIRONMENT,
        type="MANAGED",
        state="ENABLED",
        computeResources={
            "type": "FARGATE",
            "maxvCpus": 64,
            "subnets": [subnet_id],
            "securityGroupIds": [security_group_id],
        },
        serviceRole=service_role_arn,
    )["computeEnvironmentArn"]
    queue_arns = [
        batch.create_job_queue(
            jobQueueName=name,
            state="ENABLED",
            priority=priority,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": compute_environment_arn}],
        )["jobQueueArn"]
        for name, priority in ((JOB_QUEUE, 1), (SECOND_JOB_QUEUE, 2))
    ]
    job_definition_arn = batch.register_job_definition(
        jobDefinitionName=JOB_DEFINITION,
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties={
            "image": IMAGE,
            "command": ["python", "-c", "print('local Batch job definition default command')"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "0.25"},
                {"type": "MEMORY", "value": "512"},
            ],
            "executionRoleArn": execution_role_arn,
            "environment": [{"name": "LOCAL_BATCH", "value": "1"}],
            "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": LOG_GROUP}},
            "networkConfiguration": {"assignPublicIp": "ENABLED"},
            "fargatePlatformConfiguration": {"platformVersion": "LATEST"},
        },
    )["jobDefinitionArn"]
    logs.create_log_group(logGroupName=LOG_GROUP)
    client("s3").create_bucket(Bucket=WORKLOAD_BUCKET)
    status_queue_url = client("sqs").create_queue(
        QueueName=STATUS_QUEUE, Attributes={"VisibilityTimeout": str(STATUS_QUEUE_VISIBILITY_SECONDS)}
    )["QueueUrl"]

    return ReadyEnvironment(
        endpoint_url=endpoint_url,
        region=region,
        compute_environment=COMPUTE_ENVIRONMENT,
        compute_environment_arn=compute_environment_arn,
        job_queue=JOB_QUEUE,
        job_queue_arn=queue_arns[0],
        second_job_queue=SECOND_JOB_QUEUE,
        second_job_queue_arn=queue_arns[1],
        job_definition=JOB_DEFINITION,
        job_definition_arn=job_definition_arn,
        log_group=LOG_GROUP,
        subnet_id=subnet_id,
        security_group_id=security_group_id,
        execution_role_arn=execution_role_arn,
        workload_bucket=WORKLOAD_BUCKET,
        status_queue_url=status_queue_url,
    )


@dataclass(frozen=True)
class TeamResources:
    """A team's own job queue and job definition (for multi-team Airflow)."""

    team: str
    job_queue: str
    job_definition: str

    def variable(self, option: str) -> str:
        """The environment variable Airflow reads this team's executor ``option`` from."""
        return f"AIRFLOW__{self.team.upper()}___AWS_BATCH_EXECUTOR__{option.upper()}"

    def settings(self) -> dict[str, str]:
        """The team's own executor options, as Airflow's team environment variables."""
        return {
            self.variable("job_queue"): self.job_queue,
            self.variable("job_definition"): self.job_definition,
        }


TEAM_ENV = "LOCAL_BATCH_TEAM"
"""Set in a team's job definition to the team's name, so a job can tell whose definition it runs."""


def create_team_resources(client: ClientFactory, environment: ReadyEnvironment, team: str) -> TeamResources:
    """A job queue on the shared compute environment and a copy of the job definition, for ``team``."""
    batch = client("batch")
    queue = f"airflow-local-{team}-queue"
    definition = f"airflow-local-{team}-job"
    batch.create_job_queue(
        jobQueueName=queue,
        state="ENABLED",
        priority=10,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment.compute_environment_arn}],
    )
    [base] = batch.describe_job_definitions(jobDefinitionName=environment.job_definition, status="ACTIVE")[
        "jobDefinitions"
    ]
    properties = dict(base["containerProperties"])
    properties["environment"] = [*properties.get("environment", []), {"name": TEAM_ENV, "value": team}]
    batch.register_job_definition(
        jobDefinitionName=definition,
        type="container",
        platformCapabilities=base["platformCapabilities"],
        containerProperties=properties,
    )
    return TeamResources(team=team, job_queue=queue, job_definition=definition)


def _create_role(iam: Any, name: str, service: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
