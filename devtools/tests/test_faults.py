"""The fault switchboard on its own: matching, consumption and the JSON vocabulary."""

from __future__ import annotations

import pytest

from batch_devtools.local_batch import CAPACITY_REASON, Faults


def test_job_faults_are_consumed_by_matching_jobs_in_order() -> None:
    faults = Faults()
    faults.fail_before_start(pattern="etl-*", count=2)

    hits = [faults.claim_fail_before_start(name) for name in ("other", "etl-1", "etl-2", "etl-3")]

    assert [hit is not None for hit in hits] == [False, True, True, False]
    assert faults.to_dict()["fail_before_start"] == []


def test_unlimited_fault_stays_until_cleared() -> None:
    faults = Faults()
    faults.stuck_in_runnable(count=None)

    assert all(faults.claim_stuck_in_runnable(f"job-{i}").reason == CAPACITY_REASON for i in range(5))
    faults.clear()
    assert faults.claim_stuck_in_runnable("job-6") is None


def test_throttle_matches_operation_case_insensitively() -> None:
    faults = Faults()
    faults.throttle(count=1, operation="SubmitJob")

    assert faults.claim_throttle("describejobs") is None
    assert faults.claim_throttle("submitjob").status_code == 429
    assert faults.claim_throttle("submitjob") is None


def test_latency_for_one_operation_overrides_the_global_one() -> None:
    faults = Faults()
    faults.latency(0.5)
    faults.latency(0.1, operation="DescribeJobs")

    assert faults.latency_for("describejobs") == 0.1
    assert faults.latency_for("submitjob") == 0.5
    faults.latency(0, operation="DescribeJobs")
    assert faults.latency_for("describejobs") == 0.5


def test_apply_speaks_the_method_vocabulary_and_rejects_the_rest() -> None:
    faults = Faults()
    faults.apply({"fault": "host_terminated", "pattern": "x*", "count": 3, "after_seconds": 1.5})

    (rule,) = faults.to_dict()["host_terminated"]
    assert (rule["pattern"], rule["remaining"], rule["after_seconds"]) == ("x*", 3, 1.5)
    with pytest.raises(ValueError, match="must be one of"):
        faults.apply({"pattern": "x"})
    with pytest.raises(ValueError, match="count must be a positive integer"):
        faults.apply({"fault": "throttle", "count": 0})
