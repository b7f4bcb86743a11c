"""What a waiting job's reason tells the operator (``rules.waiting``), as a table."""

from __future__ import annotations

import pytest

from airflow_batch_executor.rules.waiting import (
    DEFAULT_ADVICE,
    reason_to_note,
    waiting_advice,
    waiting_note,
)

CAPACITY = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested"


@pytest.mark.parametrize(
    ("reason", "advice"),
    [
        (CAPACITY, "allow more instance types"),
        ("capacity:insufficient_instance_capacity", "allow more instance types"),
        ("CAPACITY:SOMETHING_NEW", DEFAULT_ADVICE),
        ("waiting for the compute environment", DEFAULT_ADVICE),
        ("", DEFAULT_ADVICE),
    ],
)
def test_advice_by_reason(reason: str, advice: str) -> None:
    assert advice in waiting_advice(reason)


@pytest.mark.parametrize(
    ("status", "reason", "noted", "expected"),
    [
        ("RUNNABLE", CAPACITY, None, CAPACITY),
        ("RUNNABLE", CAPACITY, CAPACITY, None),
        ("RUNNABLE", "another reason", CAPACITY, "another reason"),
        ("SUBMITTED", "queued", None, "queued"),
        ("RUNNABLE", None, None, None),
        ("RUNNABLE", "  ", None, None),
        ("RUNNING", "Essential container in task exited", None, None),
        ("FAILED", CAPACITY, None, None),
    ],
)
def test_only_a_waiting_jobs_new_reason_is_noted(status, reason, noted, expected) -> None:
    assert reason_to_note(status, reason, noted) == expected


def test_the_note_names_the_job_its_queue_the_reason_and_what_to_do() -> None:
    note = waiting_note("job-1", "dag-task-try1-abc", "spot-queue", "RUNNABLE", CAPACITY + " ")
    assert note.startswith("Batch job job-1 (dag-task-try1-abc) waits in RUNNABLE on job queue spot-queue: ")
    assert CAPACITY + ". What to do: EC2 has no capacity" in note
