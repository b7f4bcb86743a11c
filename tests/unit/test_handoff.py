"""The workload object's life around SubmitJob: written, refreshed only conditionally, removed in the
background in batches. How the object workers put refreshes first and bound shutdown is in
test_objects.py.

The gateway is a stub with S3's conditional-write rules; the same paths run over real HTTP in
tests/integration/test_s3_transport.py.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from botocore.exceptions import ReadTimeoutError

from airflow_batch_executor.aws.errors import ApiErrorKind
from airflow_batch_executor.job_contract import TAG_SUBMISSION
from airflow_batch_executor.records import Submission, WorkloadObject
from airflow_batch_executor.submit.submitter import Submitter
from airflow_batch_executor.workloads import handoff as workload_handoff
from airflow_batch_executor.workloads.handoff import REFRESH_RETRY_SECONDS, WorkloadHandoff
from airflow_batch_executor.workloads.transport import token_window

from .helpers import (
    LOCATION,
    SECRET,
    ConditionalS3Gateway,
    client_error,
    dispatch,
    generator,
    make_workload,
    needs_minting,
    request_for,
    spec_of,
)


def attempt(gateway, submission, token_generator=None, kms=None):
    handoff = WorkloadHandoff(gateway, kms_key_id=kms, generator=token_generator)
    submitter = Submitter(dispatch(gateway, handoff), rate=1000, concurrency=1)
    return submitter._attempt(submission)


def s3_submission(workload) -> Submission:
    return Submission(("k", 1), request_for(workload, LOCATION), spec_of(workload))


@needs_minting
def test_s3_mode_writes_a_fresh_token_and_the_request_holds_no_token(queued_timeout):
    import jwt

    workload = make_workload()
    gateway = ConditionalS3Gateway()
    submission = s3_submission(workload)
    result = attempt(gateway, submission, generator(), kms="alias/workloads")
    assert result.job_id == "id-1"
    [sent] = gateway.requests
    [((bucket, key), (body, etag))] = gateway.objects.items()
    assert f"s3://{bucket}/{key}" == submission.workload.uri
    assert gateway.puts[0]["kms"] == "alias/workloads"
    assert gateway.puts[0]["if_match"] is None, "the first write meets no job: a plain write"
    written = json.loads(body)
    assert written["ti"]["id"] == str(workload.ti.id)
    token = written["token"]
    assert token != "scheduler-token"
    claims = jwt.decode(token, SECRET, algorithms=["HS512"], audience="urn:airflow.apache.org:task")
    assert claims["sub"] == str(workload.ti.id)
    assert claims.get("scope", "workload") == "workload"  # Airflow 3.2.0 signs tokens without a scope
    dumped = json.dumps(sent)
    assert token not in dumped and "scheduler-token" not in dumped and "eyJ" not in dumped
    assert submission.workload.token_window == (claims["iat"], claims["exp"])
    assert submission.workload.etag == etag


@needs_minting
def test_command_mode_resubmission_carries_a_newly_signed_token(queued_timeout):
    workload = make_workload()
    gateway = ConditionalS3Gateway(submit_failures=[client_error("ServerException", 500)])
    submission = Submission(("k", 1), request_for(workload, None), spec_of(workload))
    assert submission.workload is None
    assert attempt(gateway, submission, generator()).error_kind is ApiErrorKind.SERVER
    assert attempt(gateway, submission, generator()).job_id
    tokens = [json.loads(r["containerOverrides"]["command"][4])["token"] for r in gateway.requests]
    assert len(set(tokens)) == 2 and "scheduler-token" not in tokens


def test_without_a_generator_the_schedulers_token_is_kept():
    workload = make_workload()
    gateway = ConditionalS3Gateway()
    submission = s3_submission(workload)
    assert attempt(gateway, submission).job_id
    assert gateway.body(submission.workload.uri)["token"] == "scheduler-token"
    assert submission.workload.token_window is None


@pytest.mark.parametrize(
    "error, kind",
    [
        (client_error("TooManyRequestsException", 429), ApiErrorKind.THROTTLED),
        (client_error("ServerException", 500), ApiErrorKind.SERVER),
        (client_error("ClientException", 400), ApiErrorKind.REJECTED),
    ],
)
def test_submit_job_failing_after_the_write_removes_the_object(error, kind, queued_timeout):
    workload = make_workload()
    gateway = ConditionalS3Gateway(submit_failures=[error])
    submission = s3_submission(workload)
    result = attempt(gateway, submission, generator())
    assert result.error_kind is kind
    assert len(gateway.puts) == 1 and gateway.objects == {}
    assert submission.workload.etag is None
    assert attempt(gateway, submission, generator()).job_id, "the next attempt writes it afresh"
    assert gateway.puts[1]["if_match"] is None


def test_a_lost_submit_job_answer_keeps_the_object_and_the_retry_finds_the_job(queued_timeout):
    workload = make_workload()
    gateway = ConditionalS3Gateway(submit_failures=[ReadTimeoutError(endpoint_url="http://batch")])
    submission = s3_submission(workload)
    assert attempt(gateway, submission, generator()).error_kind is ApiErrorKind.AMBIGUOUS
    assert submission.maybe_submitted and len(gateway.objects) == 1
    found = attempt(gateway, submission, generator())
    assert found.found_existing and len(gateway.requests) == 1 and len(gateway.objects) == 1


def test_a_namesake_of_another_queueing_is_not_taken_for_the_lost_answers_job(queued_timeout):
    """A try requeued after a revoke keeps its name; only a job of this queueing counts."""
    workload = make_workload()
    gateway = ConditionalS3Gateway(submit_failures=[ReadTimeoutError(endpoint_url="http://batch")])
    revoked = s3_submission(workload)
    gateway.requests.append({**revoked.request, "tags": {TAG_SUBMISSION: "an-earlier-queueing"}})
    gateway.submit_failures.insert(0, gateway.submit_failures.pop())
    submission = s3_submission(workload)
    assert attempt(gateway, submission, generator()).error_kind is ApiErrorKind.AMBIGUOUS
    gateway.requests.pop()  # the lost request never reached Batch: only the namesake is listed
    result = attempt(gateway, submission, generator())
    assert not result.found_existing and result.job_id, "submitted: the namesake is not this try's job"


def test_a_retry_after_a_lost_answer_never_rewrites_a_consumed_object(queued_timeout):
    """The lost SubmitJob made a job that already read its object, though ListJobs lists it not yet."""
    workload = make_workload()
    gateway = ConditionalS3Gateway(submit_failures=[ReadTimeoutError(endpoint_url="http://batch")])
    submission = s3_submission(workload)
    assert attempt(gateway, submission, generator()).error_kind is ApiErrorKind.AMBIGUOUS
    gateway.consume(submission.workload.uri)
    gateway.requests.clear()  # not listed yet
    result = attempt(gateway, submission, generator())
    assert result.error_kind is ApiErrorKind.AMBIGUOUS and "already read by a job" in result.error
    assert gateway.objects == {} and gateway.requests == [], "neither the object nor a second job"
    assert submission.workload.consumed and submission.maybe_submitted


@pytest.mark.parametrize(
    "error, kind, text",
    [
        (client_error("SlowDown", 503, "PutObject"), ApiErrorKind.THROTTLED, "SlowDown"),
        (client_error("InternalError", 500, "PutObject"), ApiErrorKind.SERVER, "InternalError"),
        (client_error("AccessDenied", 403, "PutObject"), ApiErrorKind.REJECTED, "s3:PutObject"),
    ],
)
def test_a_failed_write_is_a_failed_submission_and_nothing_is_submitted(error, kind, text, queued_timeout):
    workload = make_workload()
    gateway = ConditionalS3Gateway(put_failures=[error])
    submission = s3_submission(workload)
    result = attempt(gateway, submission, generator())
    assert result.error_kind is kind and not result.job_id
    assert (
        f"writing the workload to {submission.workload.uri} failed" in result.error and text in result.error
    )
    assert gateway.requests == [] and gateway.objects == {}


def test_removals_are_batched_best_effort_and_in_the_background(caplog):
    gateway = ConditionalS3Gateway(delete_failures=[client_error("AccessDenied", 403, "DeleteObjects")])
    objects = [WorkloadObject(f"s3://workloads/a/{n}.json") for n in range(3)]
    for obj in objects:
        gateway.objects[obj.bucket_key] = (b"{}", '"e"')
    handoff = WorkloadHandoff(gateway, kms_key_id=None, generator=None)
    for obj in objects:
        handoff.remove_later(obj)
    handoff.remove_later(objects[0])  # removed once only
    handoff.remove_later(None)
    handoff.start()
    handoff.stop()
    assert gateway.delete_calls == [[f"a/{n}.json" for n in range(3)]], "one call for the batch"
    assert "s3:DeleteObject" in caplog.text and "lifecycle rule" in caplog.text
    assert all(obj.removed for obj in objects)


def test_a_revoked_jobs_object_is_removed_before_remove_now_returns_with_one_short_attempt():
    gateway = ConditionalS3Gateway()
    obj = WorkloadObject("s3://workloads/a/revoked.json")
    gateway.objects[obj.bucket_key] = (b"{}", '"e"')
    handoff = WorkloadHandoff(gateway, kms_key_id=None, generator=None)
    handoff.remove_now(obj)
    assert gateway.objects == {} and gateway.single_deletes == [("a/revoked.json", True)]
    handoff.remove_now(obj)  # removed once only
    handoff.start()
    handoff.stop()
    assert gateway.single_deletes == [("a/revoked.json", True)] and gateway.delete_calls == []


def test_a_removal_that_fails_now_or_meets_a_write_under_way_is_left_to_the_background():
    gateway = ConditionalS3Gateway(delete_failures=[client_error("SlowDown", 503, "DeleteObject")])
    failing, busy = (WorkloadObject(f"s3://workloads/a/{name}.json") for name in ("failing", "busy"))
    for obj in (failing, busy):
        gateway.objects[obj.bucket_key] = (b"{}", '"e"')
    handoff = WorkloadHandoff(gateway, kms_key_id=None, generator=None)
    handoff.remove_now(failing)
    with busy.lock:  # a write or a refresh holds it
        handoff.remove_now(busy)
    assert gateway.single_deletes == [("a/failing.json", True)], "no wait for the lock"
    assert failing.removed and busy.removed
    handoff.start()
    handoff.stop()
    assert gateway.objects == {}, "the background removed both"


def written(gateway, lifetime: float, monkeypatch) -> tuple[Submission, WorkloadHandoff]:
    """A submission whose object was written with a token of ``lifetime`` seconds."""
    # Airflow 3.3 (and 3.2.2) signs for task_queued_timeout, 3.2.0 for the generator's own lifetime.
    monkeypatch.setenv("AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT", str(int(lifetime)))
    submission = s3_submission(make_workload())
    handoff = WorkloadHandoff(gateway, kms_key_id=None, generator=generator(valid_for=lifetime))
    assert attempt(gateway, submission, generator(valid_for=lifetime)).job_id
    return submission, handoff


@needs_minting
def test_a_waiting_jobs_object_is_rewritten_conditionally_once_half_the_token_lifetime_is_gone(monkeypatch):
    gateway = ConditionalS3Gateway()
    submission, handoff = written(gateway, 100, monkeypatch)
    obj = submission.workload
    issued, expires = obj.token_window
    assert expires - issued == 100
    assert not obj.refresh_due(issued + 49) and obj.refresh_due(issued + 51)
    first, first_etag = gateway.body(obj.uri), obj.etag
    obj.token_window = (issued - 60, expires - 60)  # half of its life is gone now
    handoff.refresh_later(obj, submission.spec.workload)
    assert obj.refresh_queued and not obj.refresh_due(time.time()), "one rewrite at a time"
    handoff.start()
    handoff.stop()
    rewritten = gateway.body(obj.uri)
    assert rewritten["token"] != first["token"]
    assert obj.token_window == token_window(rewritten["token"]) and not obj.refresh_queued
    assert gateway.puts[-1]["if_match"] == first_etag and obj.etag != first_etag


@needs_minting
@pytest.mark.parametrize("meanwhile", ["consumed", "changed"])
def test_a_refresh_never_brings_back_an_object_a_job_consumed(monkeypatch, meanwhile):
    """The status the refresh was decided on was stale: the job had started and read its object."""
    gateway = ConditionalS3Gateway()
    submission, handoff = written(gateway, 100, monkeypatch)
    obj = submission.workload
    if meanwhile == "consumed":
        gateway.consume(obj.uri)
    else:  # another writer (e.g. another scheduler that adopted the job) rewrote it
        gateway.objects[obj.bucket_key] = (b'{"token": "theirs"}', '"theirs"')
    obj.token_window = (time.time() - 60, time.time() + 40)
    handoff.refresh_later(obj, submission.spec.workload)
    handoff.start()
    handoff.stop()
    assert obj.consumed and not obj.refresh_due(time.time() + 1000)
    if meanwhile == "consumed":
        assert gateway.objects == {}, "not recreated"
    else:
        assert gateway.body(obj.uri) == {"token": "theirs"}


@needs_minting
def test_a_failed_rewrite_is_tried_again_a_little_later(monkeypatch):
    gateway = ConditionalS3Gateway()
    submission, handoff = written(gateway, 100, monkeypatch)
    obj = submission.workload
    gateway.put_failures.append(client_error("InternalError", 500, "PutObject"))
    obj.token_window = (time.time() - 60, time.time() + 40)
    before = time.time()
    handoff.refresh_later(obj, submission.spec.workload)
    handoff.start()
    handoff.stop()
    assert before + REFRESH_RETRY_SECONDS <= obj.retry_at <= time.time() + REFRESH_RETRY_SECONDS
    assert not obj.refresh_due(obj.retry_at - 0.01) and obj.refresh_due(obj.retry_at)


@needs_minting
def test_a_failed_rewrite_of_a_token_about_to_expire_is_tried_again_sooner(monkeypatch):
    gateway = ConditionalS3Gateway()
    submission, handoff = written(gateway, 100, monkeypatch)
    obj = submission.workload
    gateway.put_failures.append(client_error("SlowDown", 503, "PutObject"))
    obj.token_window = (time.time() - 96, time.time() + 4)
    handoff.refresh_later(obj, submission.spec.workload)
    handoff.start()
    handoff.stop()
    assert obj.refresh_due(time.time() + 1.1), "a quarter of the 4 s left, not 5 s"


@needs_minting
def test_an_adopted_jobs_object_is_read_then_rewritten_on_its_etag(monkeypatch, queued_timeout):
    gateway = ConditionalS3Gateway()
    submission, _ = written(gateway, 100, monkeypatch)
    before = gateway.body(submission.workload.uri)
    adopted = WorkloadObject(submission.workload.uri, adopted=True)
    assert adopted.refresh_due(time.time()), "its token is unknown until read"
    handoff = WorkloadHandoff(gateway, kms_key_id=None, generator=generator(valid_for=100))
    handoff.refresh_later(adopted, None)
    handoff.start()
    handoff.stop()
    assert adopted.etag == submission.workload.etag, "learnt by reading; its token is young: not rewritten"
    assert adopted.token_window == token_window(before["token"])
    later = time.time() + 60  # more than half of the token's 100 s are gone
    monkeypatch.setattr(workload_handoff, "time", SimpleNamespace(time=lambda: later))
    handoff = WorkloadHandoff(gateway, kms_key_id=None, generator=generator(valid_for=100))
    handoff.refresh_later(adopted, None)
    handoff.start()
    handoff.stop()
    after = gateway.body(adopted.uri)
    assert after["token"] != before["token"] and after["ti"] == before["ti"]
    assert gateway.puts[-1]["if_match"] == submission.workload.etag


@needs_minting
def test_an_adopted_job_that_consumed_its_object_is_left_alone(monkeypatch):
    gateway = ConditionalS3Gateway()
    submission, handoff = written(gateway, 100, monkeypatch)
    gateway.consume(submission.workload.uri)
    adopted = WorkloadObject(submission.workload.uri, adopted=True)
    handoff.refresh_later(adopted, None)
    handoff.start()
    handoff.stop()
    assert adopted.consumed and gateway.objects == {}


class LosesOneAnswer(ConditionalS3Gateway):
    """The next conditional write reaches S3 and its answer is lost; the client's retry then fails
    its precondition, as botocore's retry of a lost PutObject does."""

    lose_next = False

    def put_object(self, bucket, key, body, kms_key_id=None, *, if_match=None):
        etag = super().put_object(bucket, key, body, kms_key_id, if_match=if_match)
        if self.lose_next and if_match is not None:
            self.lose_next = False
            raise client_error("PreconditionFailed", 412, "PutObject")
        return etag


@needs_minting
def test_a_refresh_whose_answer_was_lost_is_known_to_have_landed(monkeypatch):
    gateway = LosesOneAnswer()
    submission, handoff = written(gateway, 100, monkeypatch)
    obj = submission.workload
    gateway.lose_next = True
    obj.token_window = (time.time() - 60, time.time() + 40)
    handoff.refresh_later(obj, submission.spec.workload)
    handoff.start()
    handoff.stop()
    assert not obj.consumed, "our own write, not a job's read"
    assert obj.etag == gateway.objects[obj.bucket_key][1]
    assert obj.token_window == token_window(gateway.body(obj.uri)["token"])
