"""Live task logs for the Airflow UI, read from the Batch job's CloudWatch Logs stream.

This runs in the api-server's own executor instance, which tracks no jobs: everything is found from
the job id Airflow stored as the task instance's ``external_executor_id``. A log that cannot be read
yet (no stream before the container starts, no permission) becomes a one-line message for the UI,
never an exception in the api-server.
"""

from __future__ import annotations

from airflow_batch_executor.aws.errors import describe_api_error
from airflow_batch_executor.aws.gateway import BatchGateway

DEFAULT_LOG_GROUP = "/aws/batch/job"


def read_task_log(gateway: BatchGateway, job_id: str, limit: int) -> tuple[list[str], list[str]]:
    """(messages about the source, log lines) as Airflow's file task handler expects them."""
    try:
        jobs = gateway.describe_jobs([job_id])
    except Exception as error:  # noqa: BLE001 - the UI gets a message, never an error
        return [f"Could not describe AWS Batch job {job_id}: {describe_api_error(error)}"], []
    if not jobs:
        return [f"AWS Batch job {job_id} no longer exists; its logs may still be in CloudWatch Logs"], []
    container = jobs[0].get("container") or {}
    stream = container.get("logStreamName")
    if not stream:
        status = jobs[0].get("status", "unknown")
        return [f"AWS Batch job {job_id} is {status} and has no log stream yet"], []
    options = (container.get("logConfiguration") or {}).get("options") or {}
    group = options.get("awslogs-group") or DEFAULT_LOG_GROUP
    try:
        lines = gateway.log_lines(group, stream, limit)
    except Exception as error:  # noqa: BLE001 - the UI gets a message, never an error
        return [f"Could not read CloudWatch Logs {group}/{stream}: {describe_api_error(error)}"], []
    return [f"AWS Batch job {job_id}: CloudWatch Logs {group}/{stream} (newest {limit} lines)"], lines
