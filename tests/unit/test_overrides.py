from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_batch_executor import BatchJobOverrides
from airflow_batch_executor.naming import WorkloadIdentity
from airflow_batch_executor.request import JobSpec, build_submit_request

from .test_request import options


def test_builds_submit_job_overrides():
    overrides = BatchJobOverrides(
        vcpu=2, memory_mib=4096, gpu=1, timeout=timedelta(hours=1), environment={"A": 1},
        job_queue="gpu", job_definition="jd-gpu", share_identifier="ml", scheduling_priority=7, tags={"t": "v"},
    )
    assert overrides == {
        "containerOverrides": {
            "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "4096"}, {"type": "GPU", "value": "1"}],
            "environment": [{"name": "A", "value": "1"}],
        },
        "timeout": {"attemptDurationSeconds": 3600},
        "schedulingPriorityOverride": 7,
        "jobQueue": "gpu",
        "jobDefinition": "jd-gpu",
        "shareIdentifier": "ml",
        "tags": {"t": "v"},
    }
    assert isinstance(overrides, dict)
    assert BatchJobOverrides(vcpu=0.25)["containerOverrides"]["resourceRequirements"] == [{"type": "VCPU", "value": "0.25"}]
    assert BatchJobOverrides() == {}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vcpu": 0}, "vcpu=0"),
        ({"memory_mib": -1}, "memory_mib=-1"),
        ({"gpu": 1.5}, "gpu=1.5"),
        ({"timeout": timedelta(seconds=30)}, "at least 60 seconds"),
    ],
)
def test_invalid_values_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchJobOverrides(**kwargs)


def test_is_a_valid_executor_config_for_the_request_builder():
    from airflow_batch_executor.request import base_request

    spec = JobSpec(identity=WorkloadIdentity(dag_id="d", task_id="t"), command=["x"], airflow_queue=None,
                   executor_config=BatchJobOverrides(vcpu=1, memory_mib=2048, environment={"X": "1"}))
    request = build_submit_request(base_request(options()), spec, job_name_prefix=None, api_url="u", default_queue="default")
    assert request["containerOverrides"]["resourceRequirements"] == [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]


def test_survives_airflow_serialisation():
    from airflow.serialization.serialized_objects import BaseSerialization

    overrides = BatchJobOverrides(vcpu=1, memory_mib=2048, timeout=timedelta(minutes=5))
    assert BaseSerialization.deserialize(BaseSerialization.serialize(overrides)) == dict(overrides)
