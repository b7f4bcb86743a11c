"""Array children get their workloads at start, through the local Batch: real array jobs, real ECS task
metadata, the real bootstrap and S3 with conditional writes; here the test plays the scheduler's part
(workloads/delivery.py and rules/delivery.py) that the executor takes once arrays are submitted."""

from __future__ import annotations

import hashlib
import json
import uuid

from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.job_contract import (
    DELIVERY_WAIT_VARIABLE,
    EXIT_NOT_DELIVERED,
    delivered_marker_key,
    delivery_command,
)
from airflow_batch_executor.rules.delivery import Delivery, decide
from airflow_batch_executor.workloads.delivery import Deliverer
from batch_devtools.local_batch.environment import WORKLOAD_BUCKET

from .helpers import describe, wait_until, whole_log

WAIT_SECONDS = 5
"""How long the undelivered child waits before it gives up: short, as nothing will come."""


def child_body(index: int) -> tuple[bytes, str]:
    token = f"token-of-child-{index}-{uuid.uuid4().hex}"
    workload = {"token": token, "ti": {"task_id": f"mapped-{index}", "id": str(uuid.uuid4())}}
    return json.dumps(workload).encode(), hashlib.sha256(token.encode()).hexdigest()


def sdk_report(batch_env, job_id: str) -> dict:
    [line] = [line for line in whole_log(batch_env, job_id) if line.startswith("FAKE-TASK-SDK ")]
    return json.loads(line.removeprefix("FAKE-TASK-SDK "))


def test_each_child_runs_the_workload_delivered_to_its_own_task_and_an_undelivered_one_never_starts_it(
    batch_env, s3_mode
):
    directory_key = f"{s3_mode.prefix}/mapped.r1/"
    directory = f"s3://{WORKLOAD_BUCKET}/{directory_key}"
    parent = batch_env.client("batch").submit_job(
        jobName="mapped-array",
        jobQueue=batch_env.job_queue,
        jobDefinition=batch_env.job_definition,
        arrayProperties={"size": 3},
        containerOverrides={
            "command": delivery_command(directory),
            "environment": [{"name": DELIVERY_WAIT_VARIABLE, "value": str(WAIT_SECONDS)}],
        },
    )["jobId"]
    deliverer = Deliverer(BatchGateway("aws_default", batch_env.region), kms_key_id=None)
    bodies = {index: child_body(index) for index in (0, 1)}
    delivered: dict[int, str] = {}

    def deliver_to_started_children() -> bool:
        for index in bodies:
            record = describe(batch_env, f"{parent}:{index}")
            task_arn = record.get("container", {}).get("taskArn")
            if decide(record["status"], task_arn, delivered.get(index)) is Delivery.DELIVER:
                result = deliverer.deliver(directory, index, task_arn, bodies[index][0])
                assert result.by_us and result.task_arn == task_arn
                delivered[index] = task_arn
        return len(delivered) == len(bodies)

    wait_until(deliver_to_started_children, timeout=60)
    wait_until(lambda: describe(batch_env, parent)["status"] in ("SUCCEEDED", "FAILED"), timeout=60)

    children = {index: describe(batch_env, f"{parent}:{index}") for index in range(3)}
    for index, (_, token_sha256) in bodies.items():
        assert children[index]["status"] == "SUCCEEDED", children[index]
        assert sdk_report(batch_env, f"{parent}:{index}")["token_sha256"] == token_sha256
    undelivered = children[2]
    assert undelivered["status"] == "FAILED"
    assert undelivered["container"]["exitCode"] == EXIT_NOT_DELIVERED
    assert not any(line.startswith("FAKE-TASK-SDK") for line in whole_log(batch_env, f"{parent}:2"))
    assert any(
        f"waited {WAIT_SECONDS} s for this child's workload" in line
        for line in whole_log(batch_env, f"{parent}:2")
    )

    # Each delivered workload was consumed by its child; only the markers are left (removed with the array).
    markers = {delivered_marker_key(directory_key, index) for index in bodies}
    assert set(s3_mode.objects()) == markers

    # Another attempt of child 0 (a new ECS task), seen by this scheduler or by a restarted one that
    # knows nothing of the first delivery, is never given a workload.
    later_attempt = delivered[0].rsplit("/", 1)[0] + "/" + uuid.uuid4().hex
    assert decide("RUNNING", later_attempt, delivered[0]) is Delivery.REFUSE
    restarted = Deliverer(BatchGateway("aws_default", batch_env.region), kms_key_id=None)
    for deliverer_ in (deliverer, restarted):
        again = deliverer_.deliver(directory, 0, later_attempt, child_body(0)[0])
        assert (again.by_us, again.task_arn, again.object_uri) == (False, delivered[0], None)
    assert set(s3_mode.objects()) == markers
