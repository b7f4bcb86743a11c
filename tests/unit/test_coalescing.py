"""Which waiting submissions go to Batch as one array job: mapped siblings of one try whose requests
differ only in each child's own parts, first attempts only, S3 transport only, 2 to 10,000 of them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from airflow_batch_executor.job_contract import (
    MAX_ARRAY_SIZE,
    TAG_MAP_INDEX,
    TAG_SUBMISSION,
    bootstrap_command,
)
from airflow_batch_executor.records import Submission
from airflow_batch_executor.requests.factory import RequestFactory
from airflow_batch_executor.requests.queue_ladder import QueueChoice
from airflow_batch_executor.requests.task_specs import JobSpec
from airflow_batch_executor.submit.coalescing import take_array

from .helpers import COMMAND, COMMAND_MODE, MAPPED, S3_MODE


def sibling(
    map_index: int,
    factory: RequestFactory = S3_MODE,
    config: Any = None,
    weight: int | None = None,
    **identity,
) -> Submission:
    """A mapped instance of ``MAPPED``'s try, its request as the factory builds it; ``identity`` changes
    the try it belongs to."""
    spec = JobSpec(
        replace(MAPPED, map_index=map_index, **identity),
        COMMAND,
        "default",
        config,
        priority_weight=weight,
    )
    return Submission(key=spec.identity, request=factory.build(spec), spec=spec)


def changed(submission: Submission, change: Callable[[dict[str, Any]], None]) -> Submission:
    """The same workload with ``change`` applied to a copy of its request."""
    request = copy.deepcopy(submission.request)
    change(request)
    return Submission(key=submission.key, request=request, spec=submission.spec)


def child(template: Submission, map_index: int) -> Submission:
    """Another sibling of ``template``, made by setting each child's own parts (much faster than building)."""
    assert template.spec is not None
    spec = replace(template.spec, identity=replace(template.spec.identity, map_index=map_index))
    request = copy.deepcopy(template.request)
    request["jobName"] = f"dag-task-{map_index}-try1"
    request["containerOverrides"]["command"] = bootstrap_command(f"s3://workloads/{map_index}.json")
    request["tags"] |= {TAG_MAP_INDEX: str(map_index), TAG_SUBMISSION: f"nonce{map_index}"}
    return Submission(key=spec.identity, request=request, spec=spec)


def set_in(value: Any, *path: str) -> Callable[[dict[str, Any]], None]:
    """A change setting ``value`` at ``path`` in a request."""

    def change(request: dict[str, Any]) -> None:
        *parents, last = path
        for part in parents:
            request = request.setdefault(part, {})
        request[last] = value

    return change


def test_mapped_siblings_of_one_try_go_together_first_first_in_waiting_order():
    first, second, third = sibling(0), sibling(1), sibling(2)
    assert take_array(first, [third, second]) == [first, third, second]


@pytest.mark.parametrize(
    "other",
    [
        pytest.param({"try_number": 2}, id="another try"),
        pytest.param({"run_id": "run2"}, id="another run"),
        pytest.param({"task_id": "other_task"}, id="another task"),
        pytest.param({"dag_id": "other_dag"}, id="another DAG"),
    ],
)
def test_instances_of_another_try_stay_apart(other):
    first, stranger = sibling(0), sibling(1, **other)
    third = sibling(2)
    assert take_array(first, [stranger]) == [first]
    assert take_array(first, [stranger, third]) == [first, third]


def with_fields(submission: Submission, **fields: Any) -> Submission:
    """The submission as an attempt after the first would find it."""
    for name, value in fields.items():
        setattr(submission, name, value)
    return submission


NEVER_JOIN: dict[str, Callable[[], Submission]] = {
    "unmapped": lambda: sibling(-1),
    "callback": lambda: sibling(1, callback_id="cb-1"),
    "connection test": lambda: sibling(1, connection_id="aws", connection_test_id="t-1"),
    "command mode": lambda: sibling(1, COMMAND_MODE),
    "no spec": lambda: Submission(key="k", request=sibling(1).request),
    "a later attempt": lambda: with_fields(sibling(1), attempt=1),
    "maybe submitted": lambda: with_fields(sibling(1), maybe_submitted=True),
    "look-up only": lambda: with_fields(sibling(1), look_up_only=True),
    "on a fallback queue": lambda: with_fields(sibling(1), fallback=QueueChoice("q-fallback", "full")),
    "after a Spot reclaim": lambda: with_fields(sibling(1), reclaims={"q-default": 1}),
}


@pytest.mark.parametrize("make", NEVER_JOIN.values(), ids=NEVER_JOIN.keys())
def test_what_may_never_join_an_array_goes_alone(make):
    loner = make()
    assert take_array(loner, [sibling(2), sibling(3)]) == [loner]
    first, other = sibling(0), sibling(4)
    assert take_array(first, [loner, other]) == [first, other]


REQUEST_DIFFERENCES = {
    "queue": set_in("q-other", "jobQueue"),
    "job definition": set_in("jd-other", "jobDefinition"),
    "resources": set_in([{"type": "VCPU", "value": "2"}], "containerOverrides", "resourceRequirements"),
    "environment": lambda request: request["containerOverrides"]["environment"].append(
        {"name": "X", "value": "1"}
    ),
    "timeout": set_in({"attemptDurationSeconds": 600}, "timeout"),
    "retry strategy": set_in({"attempts": 1, "evaluateOnExit": []}, "retryStrategy"),
    "a shared tag": set_in("data", "tags", "team"),
    "scheduling priority": set_in(5, "schedulingPriorityOverride"),
    "share identifier": set_in("etl", "shareIdentifier"),
    "propagate tags": set_in(True, "propagateTags"),
    "parameters": set_in({"p": "1"}, "parameters"),
}


@pytest.mark.parametrize("change", REQUEST_DIFFERENCES.values(), ids=REQUEST_DIFFERENCES.keys())
def test_a_difference_in_what_children_share_keeps_siblings_apart(change):
    first, other = sibling(0), changed(sibling(1), change)
    assert take_array(first, [other]) == [first]


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(lambda: sibling(1, config={"jobDefinitionOverrides": {}}), id="executor_config"),
        pytest.param(lambda: sibling(1, weight=7), id="priority weight"),
    ],
)
def test_a_difference_in_what_placing_reads_keeps_siblings_apart(other):
    first = sibling(0)
    assert take_array(first, [other()]) == [first]


OWN_PARTS = {
    "job name": set_in("another-name", "jobName"),
    "command": set_in(bootstrap_command("s3://elsewhere/x.json"), "containerOverrides", "command"),
    "map index tag": set_in("99", "tags", TAG_MAP_INDEX),
    "submission tag": set_in("another-nonce", "tags", TAG_SUBMISSION),
}


@pytest.mark.parametrize("change", OWN_PARTS.values(), ids=OWN_PARTS.keys())
def test_a_difference_in_a_childs_own_parts_does_not(change):
    first, other = sibling(0), changed(sibling(1), change)
    assert take_array(first, [other]) == [first, other]


def test_a_lone_instance_goes_alone():
    first = sibling(0)
    assert take_array(first, []) == [first]
    assert take_array(first, [sibling(0, run_id="run2"), sibling(1, COMMAND_MODE)]) == [first]


def test_an_array_holds_at_most_ten_thousand_and_leaves_the_rest_waiting():
    waiting = [child(sibling(0), n) for n in range(MAX_ARRAY_SIZE + 1)]
    group = take_array(waiting[0], waiting[1:])
    assert len(group) == MAX_ARRAY_SIZE
    assert group == waiting[:MAX_ARRAY_SIZE]
    left = waiting[MAX_ARRAY_SIZE]
    assert left not in group
    assert take_array(left, []) == [left]


def test_most_caps_the_array():
    first, second, third = sibling(0), sibling(1), sibling(2)
    assert take_array(first, [second, third], most=2) == [first, second]


@pytest.mark.parametrize("most", [-1, 0, 1, MAX_ARRAY_SIZE + 1])
def test_most_outside_batchs_bounds_is_refused(most):
    with pytest.raises(ValueError, match="2 to 10000"):
        take_array(sibling(0), [sibling(1)], most=most)


def test_no_submission_is_taken_twice_and_none_that_is_not_waiting():
    first, second = sibling(0), sibling(1)
    assert take_array(first, [first, second, second, first]) == [first, second]


def test_requests_are_not_changed():
    submissions = [sibling(0), sibling(1), changed(sibling(2), set_in("q-other", "jobQueue"))]
    before = [copy.deepcopy(s.request) for s in submissions]
    take_array(submissions[0], submissions[1:])
    assert [s.request for s in submissions] == before
