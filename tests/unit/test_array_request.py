"""The array request for a group of mapped siblings: one request for all, with nothing of any child's
own in it, a name that tells the task, try and map range, a delivery directory beside the members'
objects that a retry names again, and a manifest that says which child runs which instance."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from airflow_batch_executor.job_contract import (
    TAG_MAP_INDEX,
    TAG_SUBMISSION,
    delivery_command,
    request_object_uri,
)
from airflow_batch_executor.recovery.manifest import ArrayChild
from airflow_batch_executor.requests.array_request import array_request, shared_part
from airflow_batch_executor.requests.factory import RequestFactory
from airflow_batch_executor.requests.naming import WorkloadIdentity, array_name_prefix
from airflow_batch_executor.requests.task_specs import JobSpec

from .helpers import COMMAND, COMMAND_MODE, S3_MODE
from .helpers import MAPPED as MAPPED_TRY_1

MAPPED = replace(MAPPED_TRY_1, try_number=2)


def member(map_index: int, factory: RequestFactory = S3_MODE, **identity) -> tuple[dict, WorkloadIdentity]:
    spec = JobSpec(replace(MAPPED, map_index=map_index, **identity), COMMAND, "default", None)
    return factory.build(spec), spec.identity


def test_an_array_request_is_the_shared_request_with_a_size_a_name_and_a_delivery_directory():
    members = [member(index) for index in (3, 4, 7)]
    built = array_request(members)
    first = members[0][0]
    request = built.request
    assert request["arrayProperties"] == {"size": 3}
    assert request["jobName"] == f"{array_name_prefix(MAPPED)}3-7"
    assert request["containerOverrides"]["command"] == delivery_command(built.directory)
    object_dir = request_object_uri(first).rsplit("/", 1)[0]
    assert built.directory == f"{object_dir}/{request['jobName']}.{first['tags'][TAG_SUBMISSION]}/"
    assert TAG_MAP_INDEX not in request["tags"] and TAG_SUBMISSION not in request["tags"]
    assert request["tags"]["airflow.try_number"] == "2"
    for key in ("jobQueue", "jobDefinition", "retryStrategy"):
        assert request[key] == first[key]
    assert request["containerOverrides"]["environment"] == first["containerOverrides"]["environment"]


def test_no_members_own_object_or_queueing_is_in_the_array_request():
    members = [member(index) for index in range(5)]
    text = repr(array_request(members).request)
    for request, _ in members:
        assert request_object_uri(request) not in text
        assert request["tags"][TAG_SUBMISSION] not in text.replace(array_request(members).directory, "")


def test_the_manifest_says_which_child_runs_which_instance_of_which_queueing():
    members = [member(index) for index in (9, 2, 5)]
    manifest = array_request(members).manifest
    assert (manifest.dag_id, manifest.task_id, manifest.run_id, manifest.try_number) == MAPPED.task_try
    assert manifest.children == tuple(ArrayChild(i.map_index, r["tags"][TAG_SUBMISSION]) for r, i in members)
    assert manifest.child_index(replace(MAPPED, map_index=5), None) == 2
    assert "token" not in manifest.to_json().decode()


def test_the_same_members_name_the_same_directory_and_do_not_change_their_requests():
    members = [member(index) for index in range(3)]
    before = copy.deepcopy(members)
    assert array_request(members).directory == array_request(members).directory
    assert members == before


def test_shared_part_leaves_out_only_what_is_each_members_own():
    (a, _), (b, _) = member(0), member(1)
    assert a != b and shared_part(a) == shared_part(b)
    b["jobQueue"] = "other"
    assert shared_part(a) != shared_part(b)


@pytest.mark.parametrize(
    "members, problem",
    [
        ([member(0)], "2 to 10000 children"),
        ([member(0), member(1, run_id="run2")], "one task try"),
        ([member(0), member(1, try_number=3)], "one task try"),
        ([member(0), member(-1)], "one task try"),
        ([member(0, factory=COMMAND_MODE), member(1, factory=COMMAND_MODE)], "in S3"),
    ],
    ids=["one", "other-run", "other-try", "unmapped", "command-mode"],
)
def test_members_that_cannot_be_one_array_are_refused(members, problem):
    with pytest.raises(ValueError, match=problem):
        array_request(members)


def test_members_placed_differently_are_refused():
    first, second = member(0), member(1)
    second[0]["jobQueue"] = "fallback"
    with pytest.raises(ValueError, match="placed alike"):
        array_request([first, second])
