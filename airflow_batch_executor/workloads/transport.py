"""How a job receives its workload: the task to run and the token it proves itself with.

``command`` (the default) puts the workload JSON, token included, in the job's command. It needs
nothing but a queue and a job definition, but anyone who may call ``batch:DescribeJobs`` or
``batch:ListJobs``, open the Batch console, or read SubmitJob requests in an audit trail can read the
token while the job waits and use it before the job does.

With ``workload_transport = s3://bucket/prefix`` the job's command only names an object:
``python -m airflow_batch_executor.in_job.bootstrap s3://bucket/prefix/<job name>.<nonce>.json``. The executor
writes the workload there on the submit thread just before each SubmitJob (so a failed write is
retried like a failed SubmitJob), removes it when SubmitJob definitely failed, when the job is over
and when the task is revoked, and the job's bootstrap (:mod:`airflow_batch_executor.in_job.bootstrap`) reads
and deletes it with the job's own role. Nothing secret is left in the job's command, environment,
tags or name.

The nonce makes each submission's object its own: a task requeued after a revoke gets a new object,
so removing the revoked job's object can never delete the new one. Resubmissions of one submission
(backoff, an infrastructure failure before the container started) overwrite its object.

Where Airflow lets the executor sign workload tokens (:func:`airflow_compat.token_generator`), every
(re)submission carries a freshly signed token, and the object of a job still waiting for capacity is
rewritten with a new one once less than half of its token's lifetime is left.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from typing import TYPE_CHECKING

from airflow_batch_executor.job_contract import bootstrap_command
from airflow_batch_executor.options import S3Location

if TYPE_CHECKING:
    from airflow_batch_executor.requests.task_specs import JobSpec

log = logging.getLogger(__name__)


def submission_id() -> str:
    """A new random id for one queueing of a workload (its tag, and part of its object's key)."""
    return uuid.uuid4().hex[:12]


def job_command(spec: JobSpec, job_name: str, location: S3Location | None, nonce: str) -> list[str]:
    """The container command of a workload's job: the Task SDK with the workload, or the bootstrap."""
    if location is None:
        return list(spec.command)
    return bootstrap_command(f"s3://{location.bucket}/{location.key(f'{job_name}.{nonce}.json')}")


def token_window(token: str) -> tuple[float, float] | None:
    """(issued, expires) of a JWT, read without verifying it: only to know when to re-sign it."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["iat"]), float(claims["exp"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None
