"""A restarted scheduler finds the array child of a mapped try whose child id never reached Airflow:
ListJobs by the try's array-name prefix, then each array's manifest (recovery/lookup.py,
recovery/manifest.py), against real arrays in the local Batch."""

from __future__ import annotations

import uuid

import pytest

from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.job_contract import DELIVERY_WAIT_VARIABLE, delivery_command
from airflow_batch_executor.recovery.lookup import find_array_child
from airflow_batch_executor.recovery.manifest import ArrayChild, ArrayManifest, manifest_key
from airflow_batch_executor.requests.naming import WorkloadIdentity, array_job_name
from batch_devtools.local_batch.environment import WORKLOAD_BUCKET


def instance(map_index: int, try_number: int = 1) -> WorkloadIdentity:
    return WorkloadIdentity("etl", "load", "run1", map_index=map_index, try_number=try_number)


@pytest.fixture
def arrays(batch_env, s3_mode):
    """Submit an array of ``(map index, submission)`` children of one try as the executor will: its
    manifest written first, its children waiting (briefly) for workloads nobody delivers."""
    batch, s3 = batch_env.client("batch"), batch_env.client("s3")

    def submit(children: list[tuple[int, str]], try_number: int = 1, manifest: bytes | None = None) -> str:
        directory_key = f"{s3_mode.prefix}/{uuid.uuid4().hex[:8]}/"
        first = instance(children[0][0], try_number)
        if manifest is None:
            manifest = ArrayManifest(
                "etl", "load", "run1", try_number, tuple(ArrayChild(m, s) for m, s in children)
            ).to_json()
        s3.put_object(Bucket=WORKLOAD_BUCKET, Key=manifest_key(directory_key), Body=manifest)
        return batch.submit_job(
            jobName=array_job_name(first, min(m for m, _ in children), max(m for m, _ in children)),
            jobQueue=batch_env.job_queue,
            jobDefinition=batch_env.job_definition,
            arrayProperties={"size": len(children)},
            containerOverrides={
                "command": delivery_command(f"s3://{WORKLOAD_BUCKET}/{directory_key}"),
                "environment": [{"name": DELIVERY_WAIT_VARIABLE, "value": "1"}],
            },
        )["jobId"]

    return submit


def test_the_child_of_each_mapped_try_is_found_in_whichever_array_holds_it(batch_env, arrays):
    contiguous = arrays([(0, "s0"), (1, "s1"), (2, "s2")])
    scattered = arrays([(5, "s5"), (3, "s3")])
    next_try = arrays([(1, "t1"), (2, "t2")], try_number=2)
    gateway = BatchGateway("aws_default", batch_env.region)

    def found(map_index: int, try_number: int = 1, submission: str | None = None) -> str | None:
        return find_array_child(
            gateway, [batch_env.job_queue], instance(map_index, try_number), submission=submission
        )

    assert found(1) == f"{contiguous}:1"
    assert found(3) == f"{scattered}:1"
    assert found(3, submission="s3") == f"{scattered}:1"
    assert found(1, try_number=2) == f"{next_try}:0"
    assert found(4) is None, "within an array's range, yet in none"
    assert found(3, submission="requeued") is None, "another queueing of the try has no child"
    assert found(0, try_number=3) is None


def test_an_array_whose_manifest_cannot_be_read_is_never_taken_to_hold_no_child(batch_env, arrays):
    arrays([(0, "s0"), (1, "s1")], try_number=4, manifest=b"not a manifest")
    gateway = BatchGateway("aws_default", batch_env.region)
    with pytest.raises(ValueError, match="array manifest in s3://.* is unreadable"):
        find_array_child(gateway, [batch_env.job_queue], instance(1, try_number=4))
