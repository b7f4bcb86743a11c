"""Table-driven tests for classifying Batch DescribeJobs records.

Every reason string below was seen in a real DescribeJobs / ECS answer; the comment on each row
says where.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_batch_executor.rules.outcome import Outcome, Verdict, classify, reclaimed_host

STARTED_AT = 1620067361882

# --- real reason strings, with their sources ------------------------------------------------

# AWS Batch user guide, "Jobs stuck in RUNNABLE due to capacity".
CAPACITY = (
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested "
    "for instance type [instanceTypeName]"
)
# AWS Batch user guide, "Jobs stuck in RUNNABLE due to misconfiguration".
CE_MAX_RESOURCE = (
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE(s) associated with the job queue "
    "cannot meet the CPU requirement of the job."
)
JOB_RESOURCE_REQUIREMENT = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) "
    "is higher than that can be met by the CE(s) attached to the job queue."
)
SERVICE_ROLE = "MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS – Batch service role has a permission issue."
EC2_UNSUPPORTED = (
    "MISCONFIGURATION:EC2_INSTANCE_CONFIGURATION_UNSUPPORTED - Your compute environment associated "
    "with this job queue has an unsupported instance type configuration."
)
# AWS Batch user guide, "Jobs stuck in RUNNABLE due to invalid compute environments".
INVALID_CE = "ACTION_REQUIRED - CE(s) associated with the job queue are invalid."
# apache/airflow issue #38298 (Batch job stuck in RUNNABLE).
UNDETERMINED = "UNDETERMINED - Batch job is blocked, root cause is undetermined."
# AWS Batch user guide, jobStateTimeLimitActions (capacity / misconfiguration pages).
CANCELED_FOR_CAPACITY = (
    "Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
)
TERMINATED_FOR_MISCONFIG = (
    "Terminated by JobStateTimeLimit action due to reason: MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE"
)

# AWS Batch user guide "Automated job retries" (onStatusReason example) and DescribeJobs dumps.
TASK_FAILED_TO_START = "Task failed to start"
ESSENTIAL_EXITED = "Essential container in task exited"

# ActionIQ/terraform-aws-retool-ecs-fargate issue #20.
PULL_IO_TIMEOUT = (
    "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve "
    "ref docker.io/tryretool/backend:2.110.5: failed to do request: Head "
    '"https://registry-1.docker.io/v2/tryretool/backend/manifests/2.110.5": dial tcp '
    "34.205.13.154:443: i/o timeout"
)
# Public ECS troubleshooting write-up ("Another common error is ...").
PULL_CLIENT_TIMEOUT = (
    "CannotPullContainerError: Error response from daemon: Get https://XXX.dkr.ecr.us-east-1."
    "amazonaws.com/v2/: net/http: request canceled while waiting for connection "
    "(Client.Timeout exceeded while awaiting headers)"
)
# Docker Hub rate limit as logged by dockerd (public pastebin), prefixed as ECS reports it.
PULL_RATE_LIMIT = (
    "CannotPullContainerError: toomanyrequests: You have reached your pull rate limit. You may "
    "increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit"
)
# nextflow-io/nextflow issue #5099 ("Task failed to start - CannotPullContainerError: ...").
PULL_NO_SPACE = (
    "CannotPullContainerError: write /var/lib/docker/tmp/GetImageBlob887491687: no space left on device"
)
# umotif-public/terraform-aws-ecs-fargate issue #50.
SECRETS_DEADLINE = (
    "ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
    "retrieval failed: unable to retrieve secrets from ssm: service call has been retried 5 time(s): "
    "RequestCanceled: request context canceled caused by: context deadline exceeded"
)
# Public gist "ResourceInitializationError: failed to validate logger args: : signal: killed".
LOGGER_KILLED = "ResourceInitializationError: failed to validate logger args: : signal: killed"
# ECS stopped reasons treated as transient by dagster-aws's ECS run launcher.
ENI_TIMEOUT = "Timeout waiting for network interface provisioning to complete."
EPHEMERAL_TIMEOUT = "Timeout waiting for EphemeralStorage provisioning to complete."
# Qiita article on Batch evaluateOnExit (onStatusReason for the ENI timeout).
ENI_TIMEOUT_BATCH = "Waiting for the network interface to be provisioned timed out."
# ministryofjustice/modernisation-platform-environments PR #17291 (Spot reclaim).
HOST_TERMINATED = "Host EC2 (instance i-08784105ffff56b4f) terminated."
# ECS docs, task state change event example for Fargate Spot.
SPOT_TASK = "Your Spot Task was interrupted."
# NCBI ElasticBLAST docs (StatusReason "Task failed to start" + this ContainerReason).
DOCKER_TIMEOUT = "DockerTimeoutError: Could not transition to created; timed out after waiting 4m0s"
# Public ECS ops table (DataplaneError wrapper around the start timeout).
START_TIMEOUT = (
    "CannotStartContainerError: DockerTimeoutError: Could not transition to started; "
    "timed out after waiting 3m0s"
)

# Public nf-batch-tag README, full DescribeJobs record ("Task failed to start" + this reason).
MANIFEST_NOT_FOUND = (
    "CannotPullContainerError: Error response from daemon: manifest for <redacted>/nf-batch-tag:Infinity "
    "not found: manifest unknown: Requested image not found"
)
# Public ECS troubleshooting notes (pull access denied / repository does not exist).
PULL_ACCESS_DENIED = (
    "CannotPullContainerError: Error response from daemon: pull access denied for myapp, "
    "repository does not exist or may require 'docker login'"
)
# Public ECS interview question quoting the ECR auth failure.
NO_BASIC_AUTH = (
    "CannotPullContainerError: Error response from daemon: Head https://123456789.dkr.ecr.us-east-1."
    "amazonaws.com/v2/my-app/manifests/latest: no basic auth credentials"
)
# PrefectHQ/prefect discussion #16964 (ghcr.io without credentials).
GHCR_UNAUTHORIZED = (
    "CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref "
    "ghcr.io/my-org/my-image:latest: failed to authorize: failed to fetch anonymous token: unexpected "
    "status from GET request to https://ghcr.io/token?scope=repository%3Amy-org%2Fmy-image%3Apull"
    "&service=ghcr.io: 401 Unauthorized"
)
# Public ECS walkthrough (execution role stripped of its ECR policy on purpose).
ECR_ACCESS_DENIED = (
    "CannotPullECRContainerError: AccessDeniedException: User: arn:aws:sts::XXX:assumed-role/"
    "ecs-test-ecs-taskexecution-role/304803f7-b6e4-44ac-b5a4-799e88c1994f is not authorized to perform: "
    "ecr:GetAuthorizationToken on resource: * status code: 400,"
)
# Many public Fargate write-ups (arm64 image on x86_64 Fargate).
WRONG_PLATFORM = (
    "CannotPullContainerError: image Manifest does not contain descriptor matching platform 'linux/amd64'"
)
# aws/amazon-ecs-agent issues #336 / #2312 and nextflow-io/nextflow #3091.
CANNOT_INSPECT = (
    "CannotInspectContainerError: Could not transition to inspecting; timed out after waiting 30s"
)
# aws/amazon-ecs-agent issue #1187.
OOM = "OutOfMemoryError: Container killed due to memory usage"
# AWS Batch job timeout status reason (also what faiscadev/fakecloud PR #1989 mirrors).
ATTEMPT_TIMEOUT = "Job attempt duration exceeded timeout"


def record(
    status: str = "FAILED",
    status_reason: str | None = None,
    container_reason: str | None = None,
    exit_code: int | None = None,
    started_at: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    job: dict[str, Any] = {"jobId": "abc", "jobName": "dag-task-1", "status": status}
    if status_reason is not None:
        job["statusReason"] = status_reason
    container: dict[str, Any] = {}
    if container_reason is not None:
        container["reason"] = container_reason
    if exit_code is not None:
        container["exitCode"] = exit_code
    if container:
        job["container"] = container
    if started_at is not None:
        job["startedAt"] = started_at
    job.update(extra)
    return job


# --- statuses that are not FAILED --------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "verdict", "reason_class", "reason_has"),
    [
        (record("SUCCEEDED", exit_code=0, started_at=STARTED_AT), Verdict.SUCCESS, "succeeded", "SUCCEEDED"),
        (record("succeeded"), Verdict.SUCCESS, "succeeded", "SUCCEEDED"),
        (record("RUNNING", started_at=STARTED_AT), Verdict.RUNNING, "running", "RUNNING"),
        (record("SUBMITTED"), Verdict.WAITING, "waiting", "SUBMITTED"),
        (record("PENDING"), Verdict.WAITING, "waiting", "PENDING"),
        (record("STARTING"), Verdict.WAITING, "waiting", "STARTING"),
        (record("RUNNABLE", CAPACITY), Verdict.WAITING, "waiting", CAPACITY),
        (record("RUNNABLE", UNDETERMINED), Verdict.WAITING, "waiting", UNDETERMINED),
        (record("RUNNABLE", INVALID_CE), Verdict.WAITING, "waiting", INVALID_CE),
        (record("RUNNABLE", CE_MAX_RESOURCE), Verdict.TERMINATE, "misconfiguration", "maxvCpus"),
        (
            record("RUNNABLE", JOB_RESOURCE_REQUIREMENT),
            Verdict.TERMINATE,
            "misconfiguration",
            "instance type",
        ),
        (record("RUNNABLE", SERVICE_ROLE), Verdict.TERMINATE, "misconfiguration", "service role"),
        (record("RUNNABLE", EC2_UNSUPPORTED), Verdict.TERMINATE, "misconfiguration", "launch template"),
        (record("STARTING", JOB_RESOURCE_REQUIREMENT), Verdict.TERMINATE, "misconfiguration", "STARTING"),
        (record("SCHEDULED"), Verdict.WAITING, "unknown_status", "'SCHEDULED'"),
        ({}, Verdict.WAITING, "unknown_status", "no status"),
        ({"status": None, "jobId": None}, Verdict.WAITING, "unknown_status", "no jobId"),
        ({"status": 7}, Verdict.WAITING, "unknown_status", "7"),
    ],
)
def test_non_failed_statuses(
    job: dict[str, Any], verdict: Verdict, reason_class: str, reason_has: str
) -> None:
    outcome = classify(job)
    assert (outcome.verdict, outcome.reason_class) == (verdict, reason_class)
    assert reason_has in outcome.reason


def test_terminate_reason_carries_the_status_reason() -> None:
    outcome = classify(record("RUNNABLE", JOB_RESOURCE_REQUIREMENT))
    assert JOB_RESOURCE_REQUIREMENT in outcome.reason
    assert outcome.reason.startswith("Batch job abc is RUNNABLE but can never start")


# --- FAILED before the container started ------------------------------------------------------


@pytest.mark.parametrize(
    ("status_reason", "container_reason"),
    [
        (TASK_FAILED_TO_START, PULL_IO_TIMEOUT),
        (TASK_FAILED_TO_START, PULL_CLIENT_TIMEOUT),
        (TASK_FAILED_TO_START, PULL_RATE_LIMIT),
        (TASK_FAILED_TO_START, PULL_NO_SPACE),
        (TASK_FAILED_TO_START, SECRETS_DEADLINE),
        (TASK_FAILED_TO_START, LOGGER_KILLED),
        (TASK_FAILED_TO_START, DOCKER_TIMEOUT),
        (TASK_FAILED_TO_START, START_TIMEOUT),
        (ENI_TIMEOUT, None),
        (EPHEMERAL_TIMEOUT, None),
        (ENI_TIMEOUT_BATCH, None),
        (HOST_TERMINATED, None),
        (SPOT_TASK, None),
        (CAPACITY, None),
    ],
)
def test_transient_before_start_is_resubmitted(status_reason: str, container_reason: str | None) -> None:
    outcome = classify(record(status_reason=status_reason, container_reason=container_reason))
    assert (outcome.verdict, outcome.reason_class) == (Verdict.RESUBMIT, "transient_before_start")
    assert status_reason in outcome.reason
    if container_reason:
        assert container_reason in outcome.reason


@pytest.mark.parametrize(
    ("status_reason", "container_reason", "advice"),
    [
        (TASK_FAILED_TO_START, MANIFEST_NOT_FOUND, "image"),
        (TASK_FAILED_TO_START, PULL_ACCESS_DENIED, "exists"),
        (TASK_FAILED_TO_START, NO_BASIC_AUTH, "credentials"),
        (TASK_FAILED_TO_START, GHCR_UNAUTHORIZED, "credentials"),
        (TASK_FAILED_TO_START, ECR_ACCESS_DENIED, "execution role"),
        (TASK_FAILED_TO_START, WRONG_PLATFORM, "architecture"),
        (TASK_FAILED_TO_START, CANNOT_INSPECT, "ECS agent"),
        (CANCELED_FOR_CAPACITY, None, ""),
        (TERMINATED_FOR_MISCONFIG, None, "compute environments"),
        (JOB_RESOURCE_REQUIREMENT, None, "instance type"),
    ],
)
def test_permanent_before_start_fails(status_reason: str, container_reason: str | None, advice: str) -> None:
    outcome = classify(record(status_reason=status_reason, container_reason=container_reason))
    assert (outcome.verdict, outcome.reason_class) == (Verdict.FAIL, "permanent_before_start")
    assert "resubmitting would not help" in outcome.reason
    assert advice in outcome.reason


def test_permanent_signal_wins_over_transient_one() -> None:
    # Both kinds of text on one record: never resubmit what may be a standing misconfiguration.
    outcome = classify(record(status_reason=HOST_TERMINATED, container_reason=MANIFEST_NOT_FOUND))
    assert outcome.verdict is Verdict.FAIL


def test_permanent_reason_in_an_earlier_attempt_is_not_missed() -> None:
    attempts = [{"container": {"reason": MANIFEST_NOT_FOUND}, "statusReason": TASK_FAILED_TO_START}, {}]
    outcome = classify(
        record(status_reason=TASK_FAILED_TO_START, container_reason=PULL_IO_TIMEOUT, attempts=attempts)
    )
    assert outcome.verdict is Verdict.FAIL


@pytest.mark.parametrize(
    ("job", "shown"),
    [
        (record(status_reason=TASK_FAILED_TO_START), TASK_FAILED_TO_START),
        (record(status_reason="Terminated at the operator's request"), "operator's request"),
        (record(), "Batch gave no reason"),
        ({"status": "FAILED", "container": None, "attempts": None, "ecsProperties": None}, "no reason"),
        (
            {"status": "FAILED", "attempts": [None, "junk", {}], "ecsProperties": {"taskProperties": []}},
            "no reason",
        ),
        ({"status": "FAILED", "statusReason": 42, "container": "junk"}, "no reason"),
    ],
)
def test_unrecognised_before_start_fails_and_says_so(job: dict[str, Any], shown: str) -> None:
    outcome = classify(job)
    assert (outcome.verdict, outcome.reason_class) == (Verdict.FAIL, "permanent_before_start")
    assert "does not recognise" in outcome.reason
    assert shown in outcome.reason


# --- FAILED after the container started -------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "reason_has"),
    [
        (
            record(
                status_reason=ESSENTIAL_EXITED, container_reason=OOM, exit_code=137, started_at=STARTED_AT
            ),
            "give the task more memory",
        ),
        (record(status_reason=ESSENTIAL_EXITED, exit_code=1, started_at=STARTED_AT), "exit code 1"),
        (record(status_reason=HOST_TERMINATED, started_at=STARTED_AT), "Spot reclaims"),
        (record(status_reason=SPOT_TASK, exit_code=137, started_at=STARTED_AT), "Spot reclaims"),
        (record(status_reason=ATTEMPT_TIMEOUT, started_at=STARTED_AT), "timeout"),
        (record(status_reason=CAPACITY, started_at=0), CAPACITY),
        # No startedAt, but an exit code proves the container ran
        # (aws/amazon-ecs-agent #2467: OOM with exit 0).
        (record(status_reason=ESSENTIAL_EXITED, container_reason=OOM, exit_code=0), "exit code 0"),
        (record(status_reason=HOST_TERMINATED, exit_code=143), HOST_TERMINATED),
        # No startedAt and no exit code, but the reason itself says the container ran.
        (record(status_reason=ESSENTIAL_EXITED, container_reason=CANNOT_INSPECT), "ECS agent"),
        (record(status_reason=ATTEMPT_TIMEOUT), ATTEMPT_TIMEOUT),
        (record(status_reason=TASK_FAILED_TO_START, container_reason=OOM), OOM),
        # An earlier attempt ran: the task's code may have had side effects already.
        (
            record(status_reason=HOST_TERMINATED, attempts=[{"startedAt": STARTED_AT, "container": {}}, {}]),
            HOST_TERMINATED,
        ),
        (
            record(
                status_reason=TASK_FAILED_TO_START,
                container_reason=PULL_IO_TIMEOUT,
                attempts=[{"container": {"exitCode": 1}}],
            ),
            "exit code 1",
        ),
    ],
)
def test_failed_after_start_is_never_resubmitted(job: dict[str, Any], reason_has: str) -> None:
    outcome = classify(job)
    assert (outcome.verdict, outcome.reason_class) == (Verdict.FAIL, "after_start")
    assert outcome.reason.startswith("Batch job abc FAILED after the container started: ")
    assert reason_has in outcome.reason


def test_after_start_reason_reads_as_one_line() -> None:
    outcome = classify(
        record(status_reason=ESSENTIAL_EXITED, container_reason=OOM, exit_code=137, started_at=STARTED_AT)
    )
    assert outcome.reason == (
        "Batch job abc FAILED after the container started: exit code 137; "
        "OutOfMemoryError: Container killed due to memory usage; Essential container in task exited. "
        "To fix: give the task more memory."
    )


def test_multiline_reasons_are_flattened() -> None:
    outcome = classify(
        record(
            status_reason="Task failed\nto start", container_reason="CannotPullContainerError:\n  i/o timeout"
        )
    )
    assert "\n" not in outcome.reason
    assert outcome.verdict is Verdict.RESUBMIT


# --- multi-container jobs (ecsProperties) -----------------------------------------------------


def ecs_job(containers: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "jobId": "abc",
        "status": "FAILED",
        "ecsProperties": {"taskProperties": [{"containers": containers}]},
        **fields,
    }


@pytest.mark.parametrize(
    ("job", "verdict", "reason_class", "reason_has"),
    [
        (
            ecs_job(
                [{"name": "main", "exitCode": 1, "reason": None}, {"name": "sidecar", "exitCode": 0}],
                statusReason=ESSENTIAL_EXITED,
            ),
            Verdict.FAIL,
            "after_start",
            "exit code 1 (container main)",
        ),
        (
            ecs_job([{"name": "main", "exitCode": 137, "reason": OOM}]),
            Verdict.FAIL,
            "after_start",
            f"main: {OOM}",
        ),
        (
            ecs_job(
                [{"name": "main", "reason": PULL_IO_TIMEOUT}, {"name": "sidecar"}],
                statusReason=TASK_FAILED_TO_START,
            ),
            Verdict.RESUBMIT,
            "transient_before_start",
            "main: CannotPullContainerError",
        ),
        (
            ecs_job(
                [{"name": "main"}, {"name": "sidecar", "reason": MANIFEST_NOT_FOUND}],
                statusReason=TASK_FAILED_TO_START,
            ),
            Verdict.FAIL,
            "permanent_before_start",
            "sidecar: CannotPullContainerError",
        ),
        (
            ecs_job([{"name": "main", "reason": SECRETS_DEADLINE}], statusReason=TASK_FAILED_TO_START),
            Verdict.RESUBMIT,
            "transient_before_start",
            "context deadline exceeded",
        ),
    ],
)
def test_ecs_properties(job: dict[str, Any], verdict: Verdict, reason_class: str, reason_has: str) -> None:
    outcome = classify(job)
    assert (outcome.verdict, outcome.reason_class) == (verdict, reason_class)
    assert reason_has in outcome.reason


# --- never raises, never resubmits a started job ----------------------------------------------

_REAL_REASONS = [
    TASK_FAILED_TO_START,
    ESSENTIAL_EXITED,
    PULL_IO_TIMEOUT,
    MANIFEST_NOT_FOUND,
    HOST_TERMINATED,
    OOM,
    JOB_RESOURCE_REQUIREMENT,
    CAPACITY,
    SECRETS_DEADLINE,
    CANNOT_INSPECT,
    ATTEMPT_TIMEOUT,
]
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(_REAL_REASONS)
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=10,
)
_container = st.fixed_dictionaries(
    {},
    optional={
        "reason": _scalars,
        "exitCode": _scalars,
        "logStreamName": _scalars,
        "taskArn": _scalars,
        "name": _scalars,
    },
)
_attempt = st.fixed_dictionaries(
    {},
    optional={
        "container": _container | _json,
        "startedAt": _scalars,
        "stoppedAt": _scalars,
        "statusReason": _scalars,
    },
)
_jobs = st.fixed_dictionaries(
    {},
    optional={
        "jobId": _scalars,
        "jobName": _scalars,
        "status": st.sampled_from(
            ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"]
        )
        | _scalars,
        "statusReason": _scalars,
        "startedAt": _scalars,
        "stoppedAt": _scalars,
        "container": _container | _json,
        "attempts": st.lists(_attempt | _json, max_size=3) | _json,
        "ecsProperties": st.fixed_dictionaries(
            {
                "taskProperties": st.lists(
                    st.fixed_dictionaries({"containers": st.lists(_container | _json, max_size=3)}),
                    max_size=2,
                )
                | _json
            }
        )
        | _json,
    },
)


@settings(max_examples=400, deadline=None)
@given(_jobs)
def test_classify_never_raises_and_never_resubmits_a_started_job(job: dict[str, Any]) -> None:
    outcome = classify(job)
    assert isinstance(outcome, Outcome)
    assert isinstance(outcome.verdict, Verdict)
    assert outcome.reason and "\n" not in outcome.reason
    assert outcome.reason_class in {
        "succeeded",
        "waiting",
        "running",
        "misconfiguration",
        "transient_before_start",
        "permanent_before_start",
        "after_start",
        "unknown_status",
        "not_delivered",
    }
    if job.get("startedAt") is not None and outcome.reason_class != "not_delivered":
        assert outcome.verdict is not Verdict.RESUBMIT


@settings(max_examples=200, deadline=None)
@given(_jobs, st.integers(min_value=0, max_value=2**45))
def test_setting_started_at_on_a_failed_job_rules_out_resubmission(
    job: dict[str, Any], started_at: int
) -> None:
    outcome = classify({**job, "status": "FAILED", "startedAt": started_at})
    assert (outcome.verdict, outcome.reason_class) == (Verdict.FAIL, "after_start")


@given(st.one_of(st.none(), st.integers(), st.text(), st.lists(st.integers())))
def test_classify_tolerates_a_record_that_is_not_a_mapping(job: Any) -> None:
    assert classify(job).reason_class == "unknown_status"


# --- the S3 transport's bootstrap ----------------------------------------------------------------

BOOTSTRAP = [
    "python",
    "-m",
    "airflow_batch_executor.in_job.bootstrap",
    "s3://bucket/prefix/dag-task-1.0a1b.json",
]


@pytest.mark.parametrize(
    ("exit_code", "said"),
    [
        (65, "its workload object was already consumed or removed"),
        (66, "its job role may not read or delete its workload object in S3"),
        (67, "it could not fetch its workload object from S3"),
    ],
)
def test_a_bootstrap_that_could_not_fetch_its_workload_says_so(exit_code: int, said: str) -> None:
    job = record("FAILED", ESSENTIAL_EXITED, exit_code=exit_code, started_at=STARTED_AT)
    job["container"]["command"] = BOOTSTRAP
    outcome = classify(job)
    assert outcome.verdict is Verdict.FAIL
    assert f"exit code {exit_code}" in outcome.reason
    assert f"workload bootstrap stopped before running the task: {said}" in outcome.reason
    assert "log has one line naming the object" in outcome.reason


def test_the_same_exit_code_of_a_task_is_not_blamed_on_the_bootstrap() -> None:
    job = record("FAILED", ESSENTIAL_EXITED, exit_code=66, started_at=STARTED_AT)
    job["container"]["command"] = ["python", "-m", "airflow.sdk.execution_time.execute_workload"]
    assert "bootstrap" not in classify(job).reason


def test_a_task_code_the_bootstrap_remapped_is_reported_as_the_tasks_failure() -> None:
    from airflow_batch_executor.job_contract import BOOTSTRAP_FAILURES as FAILURES
    from airflow_batch_executor.job_contract import EXIT_TASK_USED_RESERVED_CODE

    assert EXIT_TASK_USED_RESERVED_CODE not in FAILURES
    job = record("FAILED", ESSENTIAL_EXITED, exit_code=EXIT_TASK_USED_RESERVED_CODE, started_at=STARTED_AT)
    job["container"]["command"] = BOOTSTRAP
    outcome = classify(job)
    assert outcome.verdict is Verdict.FAIL and outcome.reason_class == "after_start"
    assert f"exit code {EXIT_TASK_USED_RESERVED_CODE}" in outcome.reason
    assert "bootstrap" not in outcome.reason


DELIVERY = [*BOOTSTRAP[:3], "s3://bucket/prefix/dag-task-try1-0a1b2c3d4e-m0-9.0a1b/"]


def test_an_array_child_that_never_got_its_workload_is_sent_again_alone() -> None:
    job = record("FAILED", ESSENTIAL_EXITED, exit_code=68, started_at=STARTED_AT)
    job["container"]["command"] = DELIVERY
    outcome = classify(job)
    assert (outcome.verdict, outcome.reason_class) == (Verdict.RESUBMIT, "not_delivered")
    assert "its task never ran" in outcome.reason and "sent again alone, as a plain job" in outcome.reason


@pytest.mark.parametrize(
    ("command", "exit_code"),
    [(BOOTSTRAP, 68), (DELIVERY, 1), (DELIVERY, 65), (["python", "-m", "other", DELIVERY[-1]], 68)],
    ids=["plain-job", "task-failed", "other-bootstrap-code", "not-the-bootstrap"],
)
def test_only_an_undelivered_array_child_is_exempt_from_never_resubmitting_a_started_job(
    command: list[str], exit_code: int
) -> None:
    job = record("FAILED", ESSENTIAL_EXITED, exit_code=exit_code, started_at=STARTED_AT)
    job["container"]["command"] = command
    outcome = classify(job)
    assert (outcome.verdict, outcome.reason_class) == (Verdict.FAIL, "after_start")


@pytest.mark.parametrize(
    ("record", "host"),
    [
        ({"status": "FAILED", "statusReason": "Host EC2 (instance i-0abc) terminated."}, "instance i-0abc"),
        (
            {"status": "FAILED", "attempts": [{"statusReason": "Host EC2 (instance i-1) terminated."}]},
            "instance i-1",
        ),
        (
            {"status": "FAILED", "container": {"reason": "Your Spot Task was interrupted."}},
            "its Fargate Spot task",
        ),
        ({"status": "FAILED", "statusReason": "SpotInterruption"}, "its Fargate Spot task"),
        ({"status": "FAILED", "statusReason": "Essential container in task exited"}, None),
        ({"status": "RUNNING", "statusReason": "Host EC2 (instance i-0abc) terminated."}, None),
        ({"status": "FAILED", "statusReason": None, "attempts": "junk"}, None),
    ],
)
def test_a_spot_reclaim_is_told_by_its_reason(record, host) -> None:
    assert reclaimed_host(record) == host
