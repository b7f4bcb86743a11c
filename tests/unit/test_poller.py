"""The status poller over AWS Batch in memory: DescribeJobs in chunks of at most 100 ids, one round at
a time; a failed chunk comes back empty-handed and is asked again next round; TerminateJob by id and
by name, in the background, never raising."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from airflow_batch_executor.job_contract import bootstrap_command
from airflow_batch_executor.recovery.lookup import REVOKED_PREFIX
from airflow_batch_executor.status import poller as poller_module
from airflow_batch_executor.status.poller import DescribedChunk, StatusPoller

from .helpers import FakeBatch, client_error, wait_until

URI = "s3://workloads/airflow/global/dag-task-try1-abc.0123.json"


@pytest.fixture
def batch() -> FakeBatch:
    return FakeBatch()


@pytest.fixture
def forgotten() -> list[str]:
    """The workload objects the poller asked to remove."""
    return []


@pytest.fixture
def make_poller(batch: FakeBatch, forgotten: list[str]) -> Iterator:
    made: list[StatusPoller] = []

    def make(interval: float = 3600.0) -> StatusPoller:
        poller = StatusPoller(batch, interval, forget_object=forgotten.append)  # type: ignore[arg-type]
        poller.start()
        made.append(poller)
        return poller

    yield make
    batch.release_all()
    for poller in made:
        poller.stop()


def collect(poller: StatusPoller, chunks: int) -> list[DescribedChunk]:
    """Drain the poller until ``chunks`` chunks have come back."""
    answered: list[DescribedChunk] = []

    def all_back() -> bool:
        answered.extend(poller.results())
        return len(answered) >= chunks

    wait_until(all_back, f"{chunks} chunks back")
    return answered


def test_a_round_asks_for_every_job_once_in_chunks_of_at_most_100(make_poller, batch):
    poller = make_poller()
    job_ids = [batch.add_job(f"job-{n}") for n in range(250)]
    poller.poll(job_ids)
    chunks = collect(poller, 3)
    assert sorted(len(chunk.asked) for chunk in chunks) == [50, 100, 100]
    assert sorted(job_id for chunk in chunks for job_id in chunk.asked) == sorted(job_ids)
    assert sorted(len(call) for call in batch.describe_calls) == [50, 100, 100]
    for chunk in chunks:
        assert sorted(record["jobId"] for record in chunk.records) == sorted(chunk.asked)
    assert poller.results() == []


def test_a_round_is_due_only_once_the_last_one_is_back_and_the_interval_passed(make_poller, batch):
    eager, patient = make_poller(interval=0), make_poller(interval=3600)
    job_id = batch.add_job("job")
    assert eager.due() and patient.due(), "the first round is due at once"
    release = batch.hold("describe_jobs")
    eager.poll([job_id])
    patient.poll([job_id])
    wait_until(lambda: batch.waiting["describe_jobs"] == 2, "both rounds under way")
    assert not eager.due(), "the round under way has not come back"
    release.set()
    collect(eager, 1)
    collect(patient, 1)
    assert eager.due()
    assert not patient.due(), "the interval has not passed"


def test_a_failed_chunk_comes_back_without_records_and_is_asked_again_next_round(make_poller, batch, caplog):
    poller = make_poller(interval=0)
    job_ids = [batch.add_job(f"job-{n}") for n in range(150)]
    batch.failures["describe_jobs"] = [client_error("ServerException", 500, "DescribeJobs")]
    with caplog.at_level(logging.WARNING, logger=poller_module.__name__):
        poller.poll(job_ids)
        chunks = collect(poller, 2)
    [failed] = [chunk for chunk in chunks if chunk.records is None]
    [answered] = [chunk for chunk in chunks if chunk.records is not None]
    assert len(failed.asked) + len(answered.asked) == 150
    assert f"DescribeJobs for {len(failed.asked)} Batch jobs failed (server)" in caplog.text
    assert "they will be checked again" in caplog.text
    assert poller.due()
    poller.poll(failed.asked)
    [again] = collect(poller, 1)
    assert sorted(record["jobId"] for record in again.records) == sorted(failed.asked)


def test_terminate_stops_the_job_in_the_background_and_removes_its_workload_object(
    make_poller, batch, forgotten
):
    poller = make_poller()
    job_id = batch.add_job("job", status="RUNNABLE", container={"command": bootstrap_command(URI)})
    poller.terminate(job_id, "no longer wanted")
    wait_until(lambda: forgotten, "the object removed")
    assert batch.terminated == [(job_id, "no longer wanted", False)]
    assert forgotten == [URI]


def test_a_failed_terminate_is_logged_and_the_object_is_still_removed(make_poller, batch, forgotten, caplog):
    poller = make_poller()
    job_id = batch.add_job("job", status="RUNNABLE", container={"command": bootstrap_command(URI)})
    batch.failures["terminate_job"] = [client_error("ServerException", 500, "TerminateJob")]
    with caplog.at_level(logging.WARNING, logger=poller_module.__name__):
        poller.terminate(job_id, "no longer wanted")
        wait_until(lambda: forgotten, "the object removed")
    assert f"Could not terminate Batch job {job_id}: ServerException" in caplog.text
    assert batch.terminated == [] and batch.jobs[job_id]["status"] == "RUNNABLE"


def test_terminating_by_name_stops_only_the_live_jobs_of_that_name_and_queueing(make_poller, batch):
    poller = make_poller()
    ours = batch.add_job("n", status="RUNNABLE", tags={"airflow.submission": "s1"})
    earlier = batch.add_job("n", status="RUNNING", tags={"airflow.submission": "s0"})
    batch.add_job("n", status="SUCCEEDED", tags={"airflow.submission": "s1"})
    batch.add_job("n", status="FAILED", statusReason=f"{REVOKED_PREFIX}: requeued")
    batch.add_job("other", status="RUNNING", tags={"airflow.submission": "s1"})
    poller.terminate_by_name("q", "n", "lost answer", submission="s1")
    assert poller.hunting == 1
    poller.hunt()
    wait_until(lambda: batch.terminated, "a job terminated")
    assert batch.terminated == [(ours, "lost answer", False)]
    assert earlier not in batch.terminated_ids(), "a namesake of another queueing is left alone"
    assert poller.hunting == 1, "it is looked for again later: ListJobs shows a new job late"


def test_a_failed_look_up_by_name_is_made_again_at_the_next_check(make_poller, batch, monkeypatch, caplog):
    monkeypatch.setattr(poller_module, "NAME_CHECKS_AFTER_SECONDS", (0.0, 0.0))
    poller = make_poller()
    job_id = batch.add_job("n", status="RUNNABLE")
    batch.failures["find_jobs_by_name"] = [client_error("TooManyRequestsException", 429, "ListJobs")]
    poller.terminate_by_name("q", "n", "revoked")
    with caplog.at_level(logging.WARNING, logger=poller_module.__name__):
        poller.hunt()
        wait_until(lambda: "looking again later" in caplog.text, "the failed look-up logged")
    assert batch.terminated == []
    poller.hunt()
    wait_until(lambda: batch.terminated, "the job terminated")
    assert batch.terminated == [(job_id, "revoked", False)]
    assert poller.hunting == 0
