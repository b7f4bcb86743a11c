"""The fault switchboard on its own: matching, consumption and the JSON vocabulary."""

from __future__ import annotations

import pytest

from batch_devtools.local_batch import CAPACITY_REASON, Faults
from batch_devtools.local_batch.faults import MALFORMED_KINDS, ThrottleRule


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
    rule = faults.claim_throttle("submitjob")
    assert rule is not None and rule.answer(s3=False) == ("TooManyRequestsException", 429)
    assert faults.claim_throttle("submitjob") is None


def test_throttle_answers_each_service_with_its_own_throttling_error() -> None:
    assert ThrottleRule(None, 1).answer(s3=True) == ("SlowDown", 503)
    assert ThrottleRule(None, 1).answer(s3=False) == ("TooManyRequestsException", 429)
    assert ThrottleRule(None, 1, error_code="InternalError").answer(s3=True) == ("InternalError", 500)
    assert ThrottleRule(None, 1, "SlowDown", 429).answer(s3=True) == ("SlowDown", 429)


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


def test_malformed_events_cycle_through_every_kind_unless_one_is_chosen() -> None:
    faults = Faults()
    faults.malformed_events(count=len(MALFORMED_KINDS) + 1)
    faults.malformed_events(count=2, kind="status_list")

    claimed = [faults.claim_malformed_event() for _ in range(len(MALFORMED_KINDS) + 4)]

    assert claimed == [*MALFORMED_KINDS, MALFORMED_KINDS[0], "status_list", "status_list", None]
    with pytest.raises(ValueError, match="kind must be one of"):
        faults.malformed_events(kind="explode")
    with pytest.raises(ValueError, match="count must be a positive integer"):
        faults.apply({"fault": "malformed_events", "count": None})


def test_new_job_faults_speak_the_json_vocabulary() -> None:
    faults = Faults()
    faults.apply({"fault": "retry_after_start", "pattern": "r*"})
    faults.apply({"fault": "fail_after_start", "pattern": "f*", "count": None, "exit_code": 3})
    faults.apply({"fault": "vanish", "pattern": "v*", "count": 2})

    assert faults.retry_after_start_matches("run") and not faults.retry_after_start_matches("other")
    assert faults.claim_retry_after_start("run") is not None and not faults.retry_after_start_matches("run")
    assert [faults.claim_fail_after_start("f1").exit_code for _ in range(3)] == [3, 3, 3]
    assert [faults.claim_vanish(name) is not None for name in ("v1", "x", "v2", "v3")] == [
        True,
        False,
        True,
        False,
    ]
    with pytest.raises(ValueError, match="exit_code must be between 1 and 255"):
        faults.fail_after_start(exit_code=0)
