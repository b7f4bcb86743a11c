"""Airflow's environment for a soak run: its own home, database and secrets, set before Airflow is
imported (Airflow reads some of it at import), then the executor's options pointing at the local Batch.

Nothing here touches the user's AIRFLOW_HOME: every run gets a temporary one.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from typing import TYPE_CHECKING

from batch_devtools.soak.options import SoakOptions
from batch_devtools.soak.plan import MAX_SUBMIT_JOB_ATTEMPTS

if TYPE_CHECKING:
    from batch_devtools.local_batch import LocalBatch

WORKLOAD_PREFIX = "soak"
STATUS_POLL_INTERVAL = "0.5"
DEAD_LETTER_RECEIVES = 20
"""maxReceiveCount of the status queue's redrive policy, as deploy/cloudformation.yaml sets it."""
STATUS_RECONCILE_INTERVAL = "10"
"""Event mode: jobs Batch said nothing of for this long are described. 120 s by default; a dropped
final event then costs a soak two minutes, so it is shorter here."""


def prepare_airflow_home() -> str:
    """A fresh AIRFLOW_HOME with SQLite and a random JWT secret; call before importing Airflow."""
    home = tempfile.mkdtemp(prefix="abe-soak-airflow-home-")
    os.environ.update(
        {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    return home


def point_executor_at(lb: LocalBatch, options: SoakOptions, status: str) -> str | None:
    """Set the executor's options (environment variables) for this run; the workload prefix in S3 mode."""
    env = dict(lb.settings_env())
    env.update(
        {
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                {"conn_type": "aws", "extra": {"region_name": lb.region, "endpoint_url": lb.endpoint_url}}
            ),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://127.0.0.1:9/execution/",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": str(options.token_lifetime),
            "AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME": str(int(options.token_lifetime)),
            "AIRFLOW__AWS_BATCH_EXECUTOR__STATUS_POLL_INTERVAL": STATUS_POLL_INTERVAL,
            "AIRFLOW__AWS_BATCH_EXECUTOR__SUBMIT_RATE_LIMIT": str(options.submit_rate),
            "AIRFLOW__AWS_BATCH_EXECUTOR__SUBMIT_CONCURRENCY": str(options.submit_concurrency),
            "AIRFLOW__AWS_BATCH_EXECUTOR__MAX_SUBMIT_JOB_ATTEMPTS": str(MAX_SUBMIT_JOB_ATTEMPTS),
        }
    )
    prefix = None
    if options.transport == "s3":
        prefix = f"{WORKLOAD_PREFIX}-{options.seed}"
        env["AIRFLOW__AWS_BATCH_EXECUTOR__WORKLOAD_TRANSPORT"] = (
            f"s3://{lb.environment.workload_bucket}/{prefix}"
        )
    if status == "events":
        _add_dead_letter_queue(lb)
        env["AIRFLOW__AWS_BATCH_EXECUTOR__STATUS_QUEUE_URL"] = lb.status_queue_url
        env["AIRFLOW__AWS_BATCH_EXECUTOR__STATUS_RECONCILE_INTERVAL"] = STATUS_RECONCILE_INTERVAL
    os.environ.update(env)
    return prefix


def _add_dead_letter_queue(lb: LocalBatch) -> None:
    """Give the status queue the dead-letter queue a deployment has: messages the executor cannot
    read (the malformed ones) are left there, and would otherwise come back forever."""
    sqs = lb.client("sqs")
    dead = sqs.create_queue(QueueName="airflow-local-status-dead-letters")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": str(DEAD_LETTER_RECEIVES)})
    sqs.set_queue_attributes(QueueUrl=lb.status_queue_url, Attributes={"RedrivePolicy": policy})
