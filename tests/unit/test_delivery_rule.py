"""When an array child is given its workload (rules/delivery.py): its first started attempt, once."""

from __future__ import annotations

import pytest

from airflow_batch_executor.rules.delivery import Delivery, decide

FIRST = "arn:aws:ecs:us-east-1:123456789012:task/c/aaaa"
SECOND = "arn:aws:ecs:us-east-1:123456789012:task/c/bbbb"


@pytest.mark.parametrize(
    "status, task_arn, delivered_to, wanted, expected",
    [
        ("SUBMITTED", None, None, True, Delivery.WAIT),
        ("RUNNABLE", None, None, True, Delivery.WAIT),
        ("STARTING", None, None, True, Delivery.WAIT),
        ("STARTING", FIRST, None, True, Delivery.DELIVER),
        ("RUNNING", FIRST, None, True, Delivery.DELIVER),
        ("RUNNING", FIRST, FIRST, True, Delivery.DONE),
        ("SUCCEEDED", FIRST, FIRST, True, Delivery.DONE),
        # Batch started the child again (a new ECS task): the try ran, or may run, in the first one.
        ("STARTING", SECOND, FIRST, True, Delivery.REFUSE),
        ("RUNNING", SECOND, FIRST, True, Delivery.REFUSE),
        ("RUNNING", SECOND, FIRST, False, Delivery.REFUSE),
        # Revoked, or over before anyone delivered: nothing to give.
        ("RUNNING", FIRST, None, False, Delivery.DROP),
        ("FAILED", FIRST, None, True, Delivery.DROP),
        ("SUCCEEDED", None, None, True, Delivery.DROP),
    ],
)
def test_only_the_first_started_attempt_of_a_wanted_child_gets_its_workload(
    status, task_arn, delivered_to, wanted, expected
):
    assert decide(status, task_arn, delivered_to, wanted=wanted) is expected
