from __future__ import annotations

import pytest

from airflow_batch_executor.errors import TaskConfigError
from airflow_batch_executor.requests.placement import Placement, place

FARGATE = Placement(
    fair_share=False,
    platform="FARGATE",
    definition_requirements={"VCPU": "0.25", "MEMORY": "512"},
    ephemeral_storage_gib=None,
)
FAIR = Placement(
    fair_share=True,
    platform="EC2",
    definition_requirements={"VCPU": "1", "MEMORY": "2048"},
    ephemeral_storage_gib=None,
)


def request(**extra):
    return {"jobQueue": "q", "jobDefinition": "d", "jobName": "n", "containerOverrides": {}, **extra}


def resources(vcpu, memory, gpu=None):
    reqs = [{"type": "VCPU", "value": vcpu}, {"type": "MEMORY", "value": memory}]
    if gpu:
        reqs.append({"type": "GPU", "value": gpu})
    return {"resourceRequirements": reqs}


def test_valid_fargate_request_passes_unchanged():
    placed = place(
        request(containerOverrides=resources("1", "2048")), FARGATE, priority_weight=5, share_identifier=None
    )
    assert placed == request(containerOverrides=resources("1", "2048"))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (resources("1", "1024"), "vCPU 1 with 1024 MiB is not a valid Fargate size"),
        (resources("1", "2048", gpu="1"), "GPUs are not supported on Fargate"),
        ({"resourceRequirements": [{"type": "MEMORY", "value": "4096"}]}, "vCPU 0.25 with 4096 MiB"),
    ],
)
def test_invalid_fargate_requests_fail_with_the_nearest_sizes(overrides, message):
    with pytest.raises(TaskConfigError, match=message) as err:
        place(request(containerOverrides=overrides), FARGATE, priority_weight=1, share_identifier=None)
    assert "Fix:" in str(err.value)


def test_fractional_vcpu_on_ec2_fails():
    with pytest.raises(TaskConfigError, match="EC2"):
        place(
            request(containerOverrides=resources("0.5", "1024")),
            FAIR,
            priority_weight=1,
            share_identifier="s",
        )


def test_fair_share_queue_gets_share_and_priority():
    placed = place(request(), FAIR, priority_weight=42, share_identifier="analytics")
    assert placed["shareIdentifier"] == "analytics" and placed["schedulingPriorityOverride"] == 42
    assert (
        place(request(), FAIR, priority_weight=10**6, share_identifier="a")["schedulingPriorityOverride"]
        == 9999
    )
    assert place(request(), FAIR, priority_weight=-3, share_identifier="a")["schedulingPriorityOverride"] == 0
    task_level = place(
        request(shareIdentifier="mine", schedulingPriorityOverride=3),
        FAIR,
        priority_weight=42,
        share_identifier="a",
    )
    assert (task_level["shareIdentifier"], task_level["schedulingPriorityOverride"]) == ("mine", 3)


def test_fair_share_queue_without_a_share_identifier_fails_with_the_fix():
    with pytest.raises(TaskConfigError, match="share_identifier"):
        place(request(), FAIR, priority_weight=1, share_identifier=None)


def test_other_queues_never_get_share_or_priority():
    placed = place(
        request(shareIdentifier="x", schedulingPriorityOverride=3),
        FARGATE,
        priority_weight=9,
        share_identifier="a",
    )
    assert "shareIdentifier" not in placed and "schedulingPriorityOverride" not in placed
