"""The soak's invariant checker on synthetic histories: each broken promise is reported, a clean
history reports nothing (pure functions: no local Batch, no executor)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from batch_devtools.soak.invariants import Evidence, check
from batch_devtools.soak.records import ExecutorEvent, Queueing, TryKey, TryRecord

KEY = TryKey("soak", "task-00001", "soak-1", -1, 1)
NAME = "soak-task-00001-try1-0123456789"
OBJECT = f"soak-1/global/{NAME}.abcdef.json"
URI = f"s3://airflow-local-workloads/{OBJECT}"
JOB, OTHER_JOB = "job-1", "job-2"


def jwt(subject: str) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS512'})}.{part({'sub': subject, 'exp': 2_000_000_000})}.{'s' * 40}{subject}"


TOKEN = jwt("ti-1")


def entry(event: str, at: float, **fields: Any) -> dict[str, Any]:
    return {"event": event, "at": at, **fields}


def run_entry(at: float, job_id: str = JOB, attempt: int = 1) -> dict[str, Any]:
    return entry(
        "workload_run",
        at,
        jobId=job_id,
        attempt=attempt,
        uri=URI,
        type="ExecuteTask",
        dag_id=KEY.dag_id,
        task_id=KEY.task_id,
        run_id=KEY.run_id,
        map_index=KEY.map_index,
        try_number=KEY.try_number,
        token=TOKEN,
    )


def clean_history() -> list[dict[str, Any]]:
    """One try: its object written, its job submitted, started, fetching and running it, succeeding."""
    return [
        entry(
            "object_put",
            1.0,
            bucket="airflow-local-workloads",
            key=OBJECT,
            token=TOKEN,
            ifMatch=None,
            accepted=True,
        ),
        entry(
            "submit",
            1.1,
            jobId=JOB,
            jobName=NAME,
            command=["python", "-m", "airflow_batch_executor.in_job.bootstrap", URI],
        ),
        entry("attempt_started", 1.3, jobId=JOB, attempt=1),
        entry("object_get", 1.31, bucket="airflow-local-workloads", key=OBJECT, found=True),
        entry("object_delete", 1.32, bucket="airflow-local-workloads", key=OBJECT, found=True),
        entry("fetch", 1.33, jobId=JOB, attempt=1, uri=URI, outcome="ok"),
        run_entry(1.33),
        entry("job_final", 1.4, jobId=JOB, status="SUCCEEDED", attempts=1),
    ]


def clean_evidence() -> Evidence:
    record = TryRecord(KEY, NAME, [Queueing(1.0, 0)], ran_at=1.33, end="success", ended_at=1.5)
    return Evidence(
        history=clean_history(),
        tries=[record],
        events=[
            ExecutorEvent(1.15, 0, KEY, "running", JOB),
            ExecutorEvent(1.5, 0, KEY, "success", JOB),
        ],
        described={JOB},
        tokens=[TOKEN],
        texts={"executor log (DEBUG)": f"Batch job {JOB} for {KEY} succeeded", "jobs CLI output": JOB},
    )


def ran_twice(evidence: Evidence) -> None:
    evidence.history.insert(-1, run_entry(1.35, attempt=2))


def two_outcomes(evidence: Evidence) -> None:
    evidence.events.append(ExecutorEvent(1.6, 0, KEY, "failed", "lost"))


def success_whose_job_failed(evidence: Evidence) -> None:
    evidence.history[-1] = entry("job_final", 1.4, jobId=JOB, status="FAILED", attempts=1)


def success_that_never_ran(evidence: Evidence) -> None:
    evidence.history = [item for item in evidence.history if item["event"] != "workload_run"]


def failed_although_its_job_succeeded(evidence: Evidence) -> None:
    evidence.events[-1] = ExecutorEvent(1.5, 0, KEY, "failed", "missing from DescribeJobs")


def outcome_for_a_revoked_queueing(evidence: Evidence) -> None:
    evidence.tries[0].queueings = [Queueing(0.5, 0, revoked_at=0.9, revoke_reason="stuck"), Queueing(1.0, 0)]
    evidence.events.insert(0, ExecutorEvent(0.95, 0, KEY, "failed", "revoked job failed"))


def live_job_of_a_revoked_try(evidence: Evidence) -> None:
    record = evidence.tries[0]
    record.queueings = [Queueing(1.0, 0, revoked_at=1.2, revoke_reason="stuck", job_at_revoke=OTHER_JOB)]
    record.end, record.ended_at, record.ran_at = None, None, None
    evidence.history = [
        entry(
            "submit",
            1.1,
            jobId=OTHER_JOB,
            jobName=NAME,
            command=["python", "-m", "airflow_batch_executor.in_job.bootstrap", URI],
        )
    ]
    evidence.events = [ExecutorEvent(1.15, 0, KEY, "running", OTHER_JOB)]
    evidence.live_after_settle = {OTHER_JOB: "RUNNABLE"}
    evidence.objects_left = []


def job_started_after_its_try(evidence: Evidence) -> None:
    evidence.history.append(
        entry(
            "submit",
            2.0,
            jobId=OTHER_JOB,
            jobName=NAME,
            command=["python", "-m", "airflow_batch_executor.in_job.bootstrap", URI],
        )
    )
    evidence.history.append(entry("attempt_started", 2.2, jobId=OTHER_JOB, attempt=1))
    evidence.history.append(entry("job_final", 2.3, jobId=OTHER_JOB, status="FAILED", attempts=1))


def try_still_counted_as_running(evidence: Evidence) -> None:
    evidence.running_after_settle = [KEY]


def object_left_by_a_live_executor(evidence: Evidence) -> None:
    evidence.objects_left = [OBJECT]
    evidence.writers = {OBJECT: {0}}


def object_of_an_adopted_job_left(evidence: Evidence) -> None:
    evidence.objects_left = [OBJECT]
    evidence.writers = {OBJECT: {0}}
    evidence.killed = {0}
    evidence.adopted = {KEY: {JOB}}


def token_in_a_log_line(evidence: Evidence) -> None:
    evidence.texts["job log lines"] = f"inline run of {URI}\nExecuting workload token={TOKEN}"


def token_signature_in_cli_output(evidence: Evidence) -> None:
    evidence.texts["jobs CLI output"] += f"\n{JOB}  FAILED  reason: bad token …{TOKEN.split('.')[-1]}"


BROKEN: list[tuple[Callable[[Evidence], None], int, str]] = [
    (ran_twice, 1, "ran more than once"),
    (two_outcomes, 2, "outcome count"),
    (success_whose_job_failed, 2, "success without a successful run"),
    (success_that_never_ran, 2, "success without a successful run"),
    (failed_although_its_job_succeeded, 2, "failed although a job succeeded"),
    (outcome_for_a_revoked_queueing, 2, "outcome after revoke or hand-back"),
    (live_job_of_a_revoked_try, 3, "job left alive"),
    (job_started_after_its_try, 3, "job started after its try was over"),
    (try_still_counted_as_running, 3, "finished try still counted as running"),
    (object_left_by_a_live_executor, 4, "object left"),
    (object_of_an_adopted_job_left, 4, "object left"),
    (token_in_a_log_line, 5, "token leaked"),
    (token_signature_in_cli_output, 5, "token leaked"),
]


def test_a_clean_history_has_no_violations() -> None:
    violations, left = check(clean_evidence())

    assert violations == [] and left == []


@pytest.mark.parametrize(("breaking", "invariant", "kind"), BROKEN, ids=[case[0].__name__ for case in BROKEN])
def test_each_broken_promise_is_a_violation_with_its_history(
    breaking: Callable[[Evidence], None], invariant: int, kind: str
) -> None:
    evidence = clean_evidence()
    breaking(evidence)

    violations, _ = check(evidence)

    assert [(violation.invariant, violation.kind) for violation in violations] == [(invariant, kind)]
    if invariant in (1, 2, 3):
        events = [item["event"] for item in violations[0].history]
        assert "scheduler:queued" in events and "submit" in events, "the try's own history comes with it"


def test_a_leaked_token_is_not_printed_in_the_violation() -> None:
    evidence = clean_evidence()
    token_in_a_log_line(evidence)

    [violation] = check(evidence)[0]

    assert TOKEN.split(".")[1] not in violation.detail and TOKEN.split(".")[2] not in violation.detail
    assert violation.subject == "job log lines"


def test_a_failed_try_whose_successful_job_vanished_is_no_violation() -> None:
    evidence = clean_evidence()
    failed_although_its_job_succeeded(evidence)
    evidence.described = set()

    assert check(evidence)[0] == []


def test_a_revoked_try_owes_no_outcome() -> None:
    evidence = clean_evidence()
    record = evidence.tries[0]
    record.queueings = [Queueing(1.0, 0, revoked_at=1.2, revoke_reason="stuck", job_at_revoke=JOB)]
    record.end, record.ended_at, record.ran_at = "failed_by_scheduler", 1.2, None
    evidence.history = [
        *clean_history()[:2],
        entry("terminate", 1.25, jobId=JOB, status="RUNNABLE", reason="Revoked by the Airflow scheduler"),
        entry("job_final", 1.26, jobId=JOB, status="FAILED", attempts=0),
    ]
    evidence.events = [ExecutorEvent(1.15, 0, KEY, "running", JOB)]

    assert check(evidence)[0] == []

    evidence.history.append(run_entry(1.3))
    assert [violation.kind for violation in check(evidence)[0]] == ["ran although ended without running"]


def test_an_object_only_a_killed_executor_knew_is_left_to_the_lifecycle_rule() -> None:
    """Written by an executor killed before it submitted a job for it: no job names it."""
    evidence = clean_evidence()
    orphan = f"soak-1/global/{NAME}.fedcba.json"
    evidence.objects_left = [orphan]
    evidence.writers = {orphan: {0}}
    evidence.killed = {0}

    violations, left = check(evidence)

    assert violations == []
    assert [(item["key"], item["writers"], item["jobs"]) for item in left] == [(orphan, [0], [])]


def test_an_adopted_jobs_object_is_left_to_the_lifecycle_rule_only_if_the_job_vanished() -> None:
    """The object's key is known only from its job's record: gone from Batch, nobody can find it."""
    evidence = clean_evidence()
    object_of_an_adopted_job_left(evidence)
    evidence.described = set()

    violations, left = check(evidence)

    assert violations == [] and [item["key"] for item in left] == [OBJECT]
