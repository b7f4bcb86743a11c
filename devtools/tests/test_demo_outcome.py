"""The demo's verdict: what makes ``scripts/demo`` exit non-zero."""

from __future__ import annotations

from batch_devtools.devstack.demo import RunResult, outcome_problems
from batch_devtools.devstack.metadata import TaskInstanceRow


def ti(task_id: str, try_number: int = 1, state: str = "success", job: str | None = "j1") -> TaskInstanceRow:
    dag_id = "retry_once" if task_id == "flaky" else "fan_out"
    return TaskInstanceRow(dag_id, task_id, "r", -1, state, try_number, job, "default", None, None)


def test_expected_outcome_has_no_problems():
    results = [
        RunResult("fan_out", "r", "success", [ti("total")]),
        RunResult("retry_once", "r", "success", [ti("flaky", 2, job="j2")]),
    ]
    jobs = {"j1": {"jobName": "fan_out-total-try1-abc"}, "j2": {"jobName": "retry_once-flaky-try2-def"}}
    assert outcome_problems(results, jobs) == []


def test_wrong_outcomes_are_named():
    results = [
        RunResult("fan_out", "r", "failed", [ti("total", state="failed"), ti("lost", job=None)]),
        RunResult("retry_once", "r", "success", [ti("flaky", 2, job="j1")]),
    ]
    jobs = {"j1": {"jobName": "retry_once-flaky-try1-abc"}}
    problems = outcome_problems(results, jobs)
    assert "fan_out run r ended failed, expected success" in problems
    assert "fan_out.total[-1] is failed, expected success" in problems
    assert "fan_out.lost[-1] has no Batch job id" in problems
    assert any("ended on try 2 but points at job j1 (retry_once-flaky-try1-abc)" in p for p in problems)
