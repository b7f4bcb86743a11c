"""The tracker of live jobs: both indexes, and which job a try's key holds."""

from __future__ import annotations

from airflow_batch_executor.records import TrackedJob
from airflow_batch_executor.status.tracker import JobTracker


def job(job_id: str, key) -> TrackedJob:
    return TrackedJob(job_id=job_id, key=key, job_name="n", job_queue="q", attempt=1, submitted_at=0.0)


def test_tracker_indexes_both_ways_and_forgets():
    tracker = JobTracker()
    tracker.add(job("a", "k1"))
    tracker.add(job("b", "k2"))
    assert tracker.for_key("k1").job_id == "a"
    assert tracker.get("b").key == "k2"
    assert sorted(tracker.job_ids()) == ["a", "b"]
    assert tracker.pop("a").key == "k1"
    assert tracker.for_key("k1") is None and len(tracker) == 1
    assert tracker.pop("missing") is None


def test_resubmitted_job_replaces_the_old_one_for_its_key():
    tracker = JobTracker()
    tracker.add(job("old", "k"))
    tracker.add(job("new", "k"))
    assert tracker.job_ids() == ["new"]
    assert tracker.for_key("k").job_id == "new"


def test_a_later_try_supersedes_the_job_of_an_earlier_try():
    from airflow.models.taskinstancekey import TaskInstanceKey

    try1 = TaskInstanceKey("d", "t", "r", try_number=1, map_index=-1)
    try2 = try1.with_try_number(2)
    other = TaskInstanceKey("d", "t", "r", try_number=1, map_index=0)
    tracker = JobTracker()
    tracker.add(job("j1", try1))
    assert tracker.supersede(try1) is None
    assert tracker.supersede(other) is None
    assert len(tracker) == 1
    assert tracker.supersede(try2).job_id == "j1"
    assert len(tracker) == 0 and tracker.for_key(try1) is None
    assert tracker.supersede(try2) is None
