"""One short seed of the fault soak end to end (``python -m batch_devtools.soak``, its own process:
it sets up its own Airflow environment and patches the executor's clients): every fault kind happens,
and no invariant breaks.

Known executor defects the soak found (see the README's reliability section) are listed in
``KNOWN_DEFECTS``: while one of them shows in a run, the invariant test is marked xfail with its
name, and any other violation still fails it. Remove an entry once its defect is fixed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batch_devtools.soak.report import injected_kinds

SEED = 206
ARGUMENTS = [
    "--tasks", "150",
    "--seed", str(SEED),
    "--status", "events",
    "--kills", "1",
    "--fail-before-start-rate", "0.08",
    "--fail-after-start-rate", "0.06",
    "--host-terminated-rate", "0.06",
    "--retry-after-start-rate", "0.06",
    "--vanish-rate", "0.05",
    "--event-fault-rate", "0.15",
    "--stuck-rate", "0.06",
    "--revoke-rate", "0.08",
]  # fmt: skip


def handed_back(violation: dict[str, Any]) -> bool:
    return any(entry["event"] == "scheduler:handed_back" for entry in violation["history"])


def revoked_job_never_stopped(violation: dict[str, Any]) -> bool:
    """The job left alive is one the scheduler revoked while it waited, and no TerminateJob (but the
    soak's own) ever reached it: the executor that revoked it was killed first."""
    job_id = violation["detail"].split()[1]
    revoked = any(
        entry["event"] == "scheduler:revoked" and entry.get("stuck_job") == job_id
        for entry in violation["history"]
    )
    stopped = any(
        entry["event"] == "terminate"
        and entry.get("jobId") == job_id
        and not str(entry.get("reason")).startswith("Stopped by the soak")
        for entry in violation["history"]
    )
    return revoked and not stopped


def failed_after_a_lost_submit_answer(violation: dict[str, Any]) -> bool:
    return any(
        entry["event"] == "executor:failed" and "SubmitJob failed after" in str(entry.get("info"))
        for entry in violation["history"]
    )


KNOWN_DEFECTS: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
    (
        (
            "try_adopt_task_instances hands a task instance back and also keeps it in executor.running "
            "(AdoptionSearch.search reports an orphan answered within the wait as still being searched)"
        ),
        lambda v: v["kind"] == "finished try still counted as running" and handed_back(v),
    ),
    (
        (
            "a task instance revoked while its adopted job is being looked up (or before the job's record "
            "was read) leaves that job's workload object"
        ),
        lambda v: v["kind"] == "object left" and "was handed to a new executor at adoption" in v["detail"],
    ),
    (
        (
            "adoption by the stored job id takes a job that failed before start at its word, though the dead "
            "scheduler resubmitted the try under the same name and that job succeeded"
        ),
        lambda v: v["kind"] == "failed although a job succeeded" and "this job was adopted" in v["detail"],
    ),
    (
        (
            "a SubmitJob whose last attempt lost its answer fails the try at once and hunts the job down by "
            "name, but the job may start (and run the workload) before its TerminateJob lands"
        ),
        lambda v: v["kind"] == "job started after its try was over" and failed_after_a_lost_submit_answer(v),
    ),
    (
        (
            "revoke_task terminates the job in the background: an executor killed before its TerminateJob "
            "lands leaves the revoked queueing's job waiting (and its workload object in place), and the "
            "next scheduler, which queues the try again, never looks for it"
        ),
        lambda v: v["kind"] == "job left alive" and revoked_job_never_stopped(v),
    ),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("soak") / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "batch_devtools.soak", *ARGUMENTS, "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=280,  # within the suite's 300 s per test
        check=False,
    )
    assert path.exists(), f"the soak wrote no report (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    report = json.loads(Path(path).read_text())
    assert done.returncode == (1 if report["violations"] else 0), done.stdout[-3000:]
    return report


def test_every_fault_kind_happened(report: dict[str, Any]) -> None:
    kinds = injected_kinds(report)

    assert {kind for kind, count in kinds.items() if not count} == set(), kinds
    assert report["executor_restarts"][0]["offered"] > 0, "the new executor was offered the orphans"
    assert report["scheduler"]["stalled"] is False and report["scheduler"]["timed_out"] is False


def test_the_seed_is_printed_and_every_try_was_accounted_for(report: dict[str, Any]) -> None:
    assert report["seed"] == SEED and report["tasks"] == 150
    assert "no outcome" not in report["try_ends"]
    assert sum(report["task_states"].values()) == 150
    assert set(report["task_states"]) <= {"success", "failed"}


def test_no_invariant_is_broken(report: dict[str, Any]) -> None:
    known, other = [], []
    for violation in report["violations"]:
        defect = next((name for name, matches in KNOWN_DEFECTS if matches(violation)), None)
        (known if defect else other).append(defect or violation)
    assert other == [], json.dumps(other[:3], indent=2)[:6000]
    if known:
        pytest.xfail("known executor defects: " + "; ".join(sorted(set(known))))
