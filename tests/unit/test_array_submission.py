"""Mapped siblings that wait together go to Batch as one array, through the submit threads and a stub
S3 and Batch: one SubmitJob and one manifest for the group, each member's own child id, nothing of a
member's own written before its child starts, and after a lost answer every member finds its child
instead of being sent again."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from botocore.exceptions import ReadTimeoutError

from airflow_batch_executor.aws.errors import ApiErrorKind
from airflow_batch_executor.errors import TaskConfigError
from airflow_batch_executor.job_contract import request_object_uri, split_s3_uri
from airflow_batch_executor.records import Orphan, Submission, SubmitResult
from airflow_batch_executor.recovery.adoption import look_up
from airflow_batch_executor.requests.naming import array_name_prefix
from airflow_batch_executor.requests.task_specs import JobSpec
from airflow_batch_executor.submit.dispatch import Dispatch
from airflow_batch_executor.submit.submitter import Submitter
from airflow_batch_executor.workloads.handoff import WorkloadHandoff

from .helpers import (
    COMMAND,
    MAPPED,
    S3_MODE,
    ConditionalS3Gateway,
    PlacedAsBuilt,
    client_error,
    make_workload,
)


def member(map_index: int, **identity: Any) -> Submission:
    identity_ = replace(MAPPED, map_index=map_index, **identity)
    spec = JobSpec(identity_, COMMAND, "default", None, workload=make_workload())
    return Submission(key=spec.identity, request=S3_MODE.build(spec), spec=spec)


class RefusingFactory(PlacedAsBuilt):
    """Places every request as built, except those of the map indexes it refuses."""

    def __init__(self, refused: set[int]) -> None:
        self.refused = refused

    def place(self, request: dict[str, Any], spec: Any) -> dict[str, Any]:
        if spec.identity.map_index in self.refused:
            raise TaskConfigError("the task's job definition is not allowed", "list it")
        return request


def submitter_over(
    gateway: ConditionalS3Gateway, *, arrays: bool = True, refused: frozenset[int] = frozenset()
) -> Submitter:
    handoff = WorkloadHandoff(gateway, kms_key_id=None, generator=None)
    handoff.start()
    dispatch = Dispatch(gateway, RefusingFactory(set(refused)), handoff)  # type: ignore[arg-type]
    return Submitter(dispatch, rate=1000, concurrency=1, arrays=arrays)


def send(submitter: Submitter, submissions: list[Submission], timeout: float = 10.0) -> list[SubmitResult]:
    """Queue every submission before the thread starts (so all are due together); their results."""
    for submission in submissions:
        submitter.submit(submission)
    submitter.start()
    results: list[SubmitResult] = []
    deadline = time.monotonic() + timeout
    while len(results) < len(submissions):
        assert time.monotonic() < deadline, f"{len(results)} of {len(submissions)} results"
        results += submitter.results()
        time.sleep(0.005)
    return results


def by_map_index(results: list[SubmitResult]) -> dict[int, SubmitResult]:
    """The results of ``MAPPED``'s task's instances, by map index."""
    return {r.submission.key.map_index: r for r in results if r.submission.key.task_id == MAPPED.task_id}


def test_waiting_siblings_go_as_one_array_with_a_manifest_and_each_its_own_child_id():
    gateway = ConditionalS3Gateway()
    siblings = [member(index) for index in range(5)]
    other = member(0, task_id="other")
    submitter = submitter_over(gateway)
    results = by_map_index(send(submitter, [*siblings, other]))
    submitter.stop()
    array, plain = gateway.requests
    assert array["arrayProperties"] == {"size": 5} and "arrayProperties" not in plain
    assert array["jobName"] == f"{array_name_prefix(MAPPED)}0-4"
    assert plain["jobName"] == other.job_name
    children = {index: results[index].job_id for index in range(5)}
    assert children == {index: f"id-1:{index}" for index in range(5)}
    assert all(results[index].submission.attempt == 1 for index in range(5))
    directory = array["containerOverrides"]["command"][-1]
    bucket, key = split_s3_uri(directory)
    manifest = json.loads(gateway.objects[(bucket, f"{key}manifest.json")][0])
    assert [child[0] for child in manifest["children"]] == list(range(5)), "child i runs map index i"
    written = {split_s3_uri(request_object_uri(s.request)) for s in siblings}
    assert not written & set(gateway.objects), "a child's workload is delivered when it starts"
    assert split_s3_uri(request_object_uri(other.request)) in gateway.objects


def test_without_arrays_every_sibling_is_a_plain_job():
    gateway = ConditionalS3Gateway()
    submitter = submitter_over(gateway, arrays=False)
    send(submitter, [member(index) for index in range(3)])
    submitter.stop()
    assert [r["jobName"] for r in gateway.requests] == [member(index).job_name for index in range(3)]


def test_a_sibling_not_due_yet_is_left_for_later():
    gateway = ConditionalS3Gateway()
    submitter = submitter_over(gateway)
    later = member(9)
    submitter.submit(later, delay=60)
    send(submitter, [member(index) for index in range(3)])
    assert submitter.is_live(later)
    submitter.stop()
    [array] = gateway.requests
    assert array["arrayProperties"] == {"size": 3}


def test_a_member_whose_placement_fails_goes_alone_and_the_rest_still_go_as_one_array():
    gateway = ConditionalS3Gateway()
    submitter = submitter_over(gateway, refused=frozenset({1}))
    results = by_map_index(send(submitter, [member(index) for index in range(4)]))
    submitter.stop()
    [array] = gateway.requests
    assert array["arrayProperties"] == {"size": 3}
    assert [results[index].job_id for index in (0, 2, 3)] == ["id-1:0", "id-1:1", "id-1:2"]
    refused = results[1]
    assert refused.job_id is None and refused.error_kind is ApiErrorKind.REJECTED
    assert "not allowed" in refused.error


def test_after_a_lost_answer_every_member_finds_its_child_and_nothing_is_sent_twice():
    gateway = ConditionalS3Gateway(submit_failures=[ReadTimeoutError(endpoint_url="http://batch")])
    submitter = submitter_over(gateway)
    siblings = [member(index) for index in range(3)]
    lost = send(submitter, siblings)
    assert {r.error_kind for r in lost} == {ApiErrorKind.AMBIGUOUS}
    assert all(r.submission.maybe_submitted for r in lost)
    for result in lost:
        submitter.put(result.submission)
    found: list[SubmitResult] = []
    deadline = time.monotonic() + 10
    while len(found) < 3 and time.monotonic() < deadline:
        found += submitter.results()
        time.sleep(0.005)
    submitter.stop()
    assert {r.submission.key.map_index: r.job_id for r in found} == {0: "id-1:0", 1: "id-1:1", 2: "id-1:2"}
    assert all(r.found_existing for r in found)
    assert len(gateway.requests) == 1, "the array the lost answer made is the only job"


def test_the_manifest_of_an_array_batch_refused_is_removed():
    gateway = ConditionalS3Gateway(submit_failures=[client_error("ClientException", 400)])
    submitter = submitter_over(gateway)
    results = send(submitter, [member(index) for index in range(2)])
    assert {r.error_kind for r in results} == {ApiErrorKind.REJECTED}
    assert not any(r.submission.maybe_submitted for r in results)
    deadline = time.monotonic() + 10
    while gateway.objects and time.monotonic() < deadline:
        time.sleep(0.01)
    submitter.stop()
    assert gateway.objects == {}


def test_a_new_scheduler_finds_the_child_of_an_instance_whose_id_was_never_saved():
    """The scheduler died between the array's SubmitJob and the children's ids reaching Airflow."""
    gateway = ConditionalS3Gateway()
    submitter = submitter_over(gateway)
    siblings = [member(index) for index in range(3)]
    send(submitter, siblings)
    submitter.stop()
    orphans = [Orphan(s.key, None, "default", s.job_name, array_identity=s.spec.identity) for s in siblings]
    found = {lookup.orphan.key.map_index: lookup.job for lookup in look_up(gateway, orphans)}
    assert {index: job.job_id for index, job in found.items()} == {0: "id-1:0", 1: "id-1:1", 2: "id-1:2"}
    alone = Orphan(member(7).key, None, "default", member(7).job_name, array_identity=member(7).spec.identity)
    [none] = look_up(gateway, [alone])
    assert none.job is None, "an instance no array holds provably has no job"
