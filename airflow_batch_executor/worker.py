"""The job's bootstrap in S3 mode: fetch the workload out of band, then run it with the Task SDK.

``python -m airflow_batch_executor.worker s3://bucket/prefix/<object>.json`` is the whole command of
a job submitted with ``[aws_batch_executor] workload_transport = s3://bucket/prefix``. It

1. reads the object with the job's own role (boto3's default credentials and region; the SDK's
   ``AWS_ENDPOINT_URL`` is honoured),
2. deletes it, so the token it carries exists in one place only: this container,
3. writes it to a private temporary file (mode 0600), and
4. runs ``python -m airflow.sdk.execution_time.execute_workload --json-path FILE`` (for an executor
   callback: ``python -m airflow_batch_executor.callback_runner --json-path FILE``), forwarding
   SIGTERM and SIGINT to it and exiting with its exit code.

A job that cannot fetch its workload fails with one line naming the object and what to do, and
one of the exit codes below, which the executor turns into the task's failure reason.

Why a retry of the same job cannot find the object: the first start of the job deleted it. Batch
retries a job (a job definition or ``retryStrategy`` with more than one attempt) only after its
container started, that is after the bootstrap consumed the object; by then the task's try is
running in Airflow, and a second start must not run it again. So a missing object fails the job
(``EXIT_OBJECT_MISSING``) instead of running anything; the executor's own resubmissions (of jobs
that failed before their container started) write the object again first.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from types import FrameType

TASK_SDK_MODULE = "airflow.sdk.execution_time.execute_workload"
CALLBACK_MODULE = "airflow_batch_executor.callback_runner"

EXIT_OBJECT_MISSING = 65
EXIT_ACCESS_DENIED = 66
EXIT_FETCH_FAILED = 67
EXIT_USAGE = 64

FAILURES = {
    EXIT_OBJECT_MISSING: "its workload object was already consumed or removed",
    EXIT_ACCESS_DENIED: "its job role may not read or delete its workload object in S3",
    EXIT_FETCH_FAILED: "it could not fetch its workload object from S3",
    EXIT_USAGE: "its bootstrap command was malformed",
}

_MISSING_CODES = {"NoSuchKey", "404"}
_DENIED_CODES = {"AccessDenied", "403", "AllAccessDisabled", "KMS.AccessDeniedException"}


class FetchError(Exception):
    def __init__(self, exit_code: int, message: str) -> None:
        self.exit_code = exit_code
        super().__init__(message)


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key:
        raise FetchError(EXIT_USAGE, f"expected one argument s3://bucket/key, got {uri!r}")
    return bucket, key


def _prefix_arn(bucket: str, key: str) -> str:
    prefix, _, _ = key.rpartition("/")
    return f"arn:aws:s3:::{bucket}/{prefix}/*" if prefix else f"arn:aws:s3:::{bucket}/*"


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", type(error).__name__))


def fetch(uri: str, client: object | None = None) -> bytes:
    """Read and delete the workload object; :class:`FetchError` says which object and what to do."""
    bucket, key = _split(uri)
    if client is None:
        import boto3

        client = boto3.client("s3")
    step, permission = "read", "s3:GetObject"
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[attr-defined]
        step, permission = "delete", "s3:DeleteObject"
        client.delete_object(Bucket=bucket, Key=key)  # type: ignore[attr-defined]
    except Exception as error:  # every failure becomes one line and an exit code
        code = _error_code(error)
        if code in _MISSING_CODES and step == "read":
            raise FetchError(
                EXIT_OBJECT_MISSING,
                f"workload object {uri} does not exist: a start of this job already consumed it "
                "(AWS Batch retried the job after its container started), or the executor removed it "
                "after the task was revoked. Airflow's retries run the task again with a new job",
            ) from error
        if code in _DENIED_CODES:
            raise FetchError(
                EXIT_ACCESS_DENIED,
                f"access denied to {step} workload object {uri} ({code}): grant the job role "
                f"{permission} on {_prefix_arn(bucket, key)} (and kms:Decrypt when workload_kms_key_id "
                "is set)",
            ) from error
        if code == "NoSuchBucket":
            raise FetchError(
                EXIT_FETCH_FAILED,
                f"cannot {step} workload object {uri}: bucket {bucket!r} does not exist in the job's "
                "region; use a bucket in the job queue's region for workload_transport",
            ) from error
        raise FetchError(
            EXIT_FETCH_FAILED, f"cannot {step} workload object {uri}: {code}: {error}"
        ) from error
    return body


def runner_module(workload: bytes) -> str:
    """The module that runs this workload: the Task SDK, or the callback runner for a callback."""
    try:
        kind = json.loads(workload).get("type")
    except (ValueError, AttributeError):
        kind = None
    return CALLBACK_MODULE if kind == "ExecuteCallback" else TASK_SDK_MODULE


def run_task_sdk(workload: bytes) -> int:
    """Run the workload's runner on a private copy of it; its exit code, signals passed on."""
    fd, path = tempfile.mkstemp(prefix="airflow-workload-", suffix=".json")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(workload)
        child = subprocess.Popen([sys.executable, "-m", runner_module(workload), "--json-path", path])

        def forward(signum: int, _frame: FrameType | None) -> None:
            child.send_signal(signum)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, forward)
        returncode = child.wait()
        return 128 - returncode if returncode < 0 else returncode
    finally:
        os.unlink(path)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        if len(args) != 1:
            raise FetchError(EXIT_USAGE, f"expected one argument s3://bucket/key, got {args!r}")
        workload = fetch(args[0])
    except FetchError as error:
        print(f"airflow-batch-executor worker: {error}", file=sys.stderr, flush=True)
        return error.exit_code
    return run_task_sdk(workload)


if __name__ == "__main__":
    raise SystemExit(main())
