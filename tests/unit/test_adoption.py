"""Finding a dead scheduler's jobs: what is adopted, what is handed back, and what is searched on."""

from __future__ import annotations

import threading
import time

from botocore.exceptions import ClientError

from airflow_batch_executor.records import Orphan
from airflow_batch_executor.recovery import adoption
from airflow_batch_executor.recovery.adoption import AdoptionSearch, look_up


class Batch:
    """DescribeJobs and ListJobs by name over a list of job records; ``down`` makes every call fail."""

    def __init__(self, jobs: list[dict]) -> None:
        self.jobs = jobs
        self.down = threading.Event()

    def _check(self) -> None:
        if self.down.is_set():
            raise ClientError(
                {"Error": {"Code": "TooManyRequestsException", "Message": "slow down"}}, "ListJobs"
            )

    def describe_jobs(self, job_ids):
        self._check()
        return [job for job in self.jobs if job["jobId"] in job_ids]

    def find_jobs_by_name(self, queue, name):
        self._check()
        named = [job for job in self.jobs if job["jobName"] == name and job.get("queue", "q") == queue]
        return sorted(named, key=lambda job: job["createdAt"], reverse=True)


def job(job_id: str, name: str, status: str, created: int, reason: str = "") -> dict:
    return {"jobId": job_id, "jobName": name, "status": status, "createdAt": created, "statusReason": reason}


def orphan(key: str, external_id: str | None = None) -> Orphan:
    return Orphan(key, external_id, "q", f"{key}-try1")


def test_by_id_by_name_and_none():
    batch = Batch([job("j1", "a-try1", "RUNNING", 1), job("j2", "b-try1", "SUCCEEDED", 2)])
    found = {
        lookup.orphan.key: lookup.job
        for lookup in look_up(batch, [orphan("a", "j1"), orphan("b"), orphan("c")])
    }
    assert found["a"].job_id == "j1" and found["b"].job_id == "j2" and found["c"] is None


def test_a_job_the_ladder_sent_to_a_fallback_queue_is_found_there_by_its_name():
    """queue_fallbacks: the dead scheduler's job of this try went to the fallback queue."""
    batch = Batch([{**job("j1", "a-try2", "RUNNING", 1), "queue": "on-demand"}])
    on_the_ladder = Orphan("a", None, "q", "a-try2", ("on-demand",))
    [lookup] = look_up(batch, [on_the_ladder])
    assert lookup.job is not None and (lookup.job.job_id, lookup.job.job_queue) == ("j1", "on-demand")
    assert [lookup.job for lookup in look_up(batch, [Orphan("a", None, "q", "a-try2")])] == [None]


def test_a_stale_job_id_loses_to_the_resubmission_of_the_same_try():
    """The dead scheduler resubmitted a job that failed before its start, but never stored the new id."""
    batch = Batch(
        [
            job("old", "a-try1", "FAILED", 1, "Task failed to start"),
            job("new", "a-try1", "SUCCEEDED", 2),
        ]
    )
    [lookup] = look_up(batch, [orphan("a", "old")])
    assert lookup.job.job_id == "new"


def test_a_revoked_job_is_no_job_of_the_requeued_try():
    batch = Batch([job("revoked", "a-try1", "FAILED", 1, "Revoked by the Airflow scheduler: stuck")])
    assert [lookup.job for lookup in look_up(batch, [orphan("a", "revoked")])] == [None]


def test_answered_orphans_are_not_also_still_searched_and_unanswered_ones_are(monkeypatch):
    monkeypatch.setattr(adoption, "RETRY_MIN_SECONDS", 0.01)
    batch = Batch([job("j1", "a-try1", "RUNNING", 1)])
    search = AdoptionSearch(batch)
    answered, still_searched = search.search([orphan("a", "j1"), orphan("none")], wait=10)
    assert {lookup.orphan.key for lookup in answered} == {"a", "none"} and still_searched == []
    assert len(search) == 0

    batch.down.set()
    answered, still_searched = search.search([orphan("later", "j1")], wait=0.2)
    assert answered == [] and [o.key for o in still_searched] == ["later"] and len(search) == 1
    batch.down.clear()
    late, deadline = [], time.monotonic() + 10
    while not late and time.monotonic() < deadline:
        late += search.results()
        time.sleep(0.02)
    assert [(lookup.orphan.key, lookup.job.job_id) for lookup in late] == [("later", "j1")]
    assert len(search) == 0
    search.stop()


def test_a_cancelled_search_drops_its_answer(monkeypatch):
    monkeypatch.setattr(adoption, "RETRY_MIN_SECONDS", 0.01)
    batch = Batch([job("j1", "a-try1", "RUNNING", 1)])
    batch.down.set()
    search = AdoptionSearch(batch)
    search.search([orphan("a", "j1")], wait=0.1)
    assert search.cancel("a").key == "a"
    batch.down.clear()
    assert search.results() == [] and len(search) == 0
    search.stop()


def test_a_search_cancelled_after_its_answer_came_drops_the_answer_too(monkeypatch):
    """The answer arrived between two heartbeats, then the scheduler revoked the task instance: no
    outcome may follow the revoke."""
    monkeypatch.setattr(adoption, "RETRY_MIN_SECONDS", 0.01)
    batch = Batch([job("j1", "a-try1", "RUNNING", 1)])
    batch.down.set()
    search = AdoptionSearch(batch)
    search.search([orphan("a", "j1")], wait=0.1)
    batch.down.clear()
    deadline = time.monotonic() + 10
    while not search._answers and time.monotonic() < deadline:
        time.sleep(0.01)
    assert search.cancel("a") is not None
    assert search.results() == []
    search.stop()
