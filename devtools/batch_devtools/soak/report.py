"""The soak's report: the seed and parameters, tasks and tries, the faults injected per kind (counted
where they happened: the fault hooks' counters and the local Batch's own history and records), the
executor restarts, revokes, wall time and violations with their history; as text and as JSON."""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from batch_devtools.local_batch import HOST_TERMINATED_REASON
from batch_devtools.soak.client_faults import BURST, KILLED, LOST_ANSWER, SERVER_ERROR, THROTTLED
from batch_devtools.soak.invariants import Violation
from batch_devtools.soak.plan import EVENT_FAULTS, FAIL_EXIT_CODE
from batch_devtools.soak.records import TryRecord

if TYPE_CHECKING:
    from batch_devtools.soak.evidence import Gathered
    from batch_devtools.soak.options import SoakOptions
    from batch_devtools.soak.plan import SoakPlan

HISTORY_LINES = 60
SHOWN_PER_KIND = 3
"""Violations of one kind printed with their history; the JSON report has all of them."""
REVOKE_STAGES = {
    "before_submit": "before submit",
    "in_flight": "while SubmitJob was in flight",
    "stuck": "after submit, while its job waited",
}


def build(
    options: SoakOptions,
    plan: SoakPlan,
    gathered: Gathered,
    violations: list[Violation],
    lifecycle: list[dict[str, Any]],
    wall_seconds: float,
    token_refresh_note: str | None,
) -> dict[str, Any]:
    run = gathered.run
    tries = list(run.model.tries.values())
    ends = Counter(record.end or "no outcome" for record in tries)
    task_states = Counter(ti.state for ti in run.model.tis)
    notes = list(gathered.notes)
    if token_refresh_note:
        notes.append(token_refresh_note)
    return {
        "seed": plan.seed,
        "parameters": {**options.to_dict(), "status": plan.status},
        "tasks": len(run.model.tis),
        "tries": len(tries),
        "queueings": sum(len(record.queueings) for record in tries),
        "try_ends": dict(sorted(ends.items())),
        "task_states": dict(sorted(task_states.items())),
        "faults_planned": plan.planned(),
        "faults_injected": injected(gathered),
        "executor_restarts": [
            {
                "at": round(kill.at - run.record.started_at, 3),
                "killed_executor": kill.generation,
                "events_lost_with_it": kill.lost_events,
                "adoption_delay": kill.adoption_delay,
                "offered": len(kill.offered),
                "handed_back": kill.handed_back,
                "adoption_seconds": round(kill.adoption_seconds or 0.0, 3),
            }
            for kill in run.record.kills
        ],
        "revokes": revokes(tries, gathered),
        "scheduler": {
            "stuck_jobs_released": run.model.releases,
            "stray_events": len(run.model.stray_events),
            "executor_start_failures": run.record.start_failures,
            "end_returned": run.record.end_returned,
            "timed_out": run.record.timed_out,
            "stalled": run.record.stalled,
            "jobs_stopped_by_the_soak": run.record.cleaned_up,
        },
        "objects_left_to_the_lifecycle_rule": lifecycle,
        "observations": observations(gathered),
        "notes": notes,
        "wall_seconds": round(wall_seconds, 1),
        "phases": _phases(run.record),
        "violations": [violation.to_dict() for violation in violations],
        "tries_not_plainly_successful": [
            {"try": str(record.key), "job_name": record.job_name, "history": record.marks()}
            for record in tries
            if record.end != "success" or len(record.queueings) > 1
        ],
    }


def _phases(record: Any) -> dict[str, float | None]:
    """Seconds from the start of the run to each of its ends."""
    marks = {
        "faults_stopped": record.drained_at,
        "every_try_over": record.all_finished_at,
        "jobs_settled": record.settled_at,
        "end_returned": record.ended_at,
    }
    return {name: round(at - record.started_at, 1) if at else None for name, at in marks.items()}


def injected(gathered: Gathered) -> dict[str, Any]:
    run, records, history = gathered.run, gathered.records, gathered.evidence.history
    calls = run.faults.counts()
    at_drain = run.record.faults_at_drain
    attempts = [attempt for record in records.values() for attempt in record.get("attempts") or []]
    pull_errors = [str((a.get("container") or {}).get("reason", "")) for a in attempts]
    pull_errors = [reason for reason in pull_errors if reason.startswith("CannotPullContainerError")]
    finals = {entry["jobId"] for entry in history if entry["event"] == "job_final"}
    counts: dict[str, Any] = {
        "aws_calls_throttled": _calls(calls.get(THROTTLED, {})),
        "aws_calls_5xx": _calls(calls.get(SERVER_ERROR, {})),
        "aws_answers_lost": _calls(calls.get(LOST_ANSWER, {})),
        "adoption_lookups_throttled": _calls(calls.get(BURST, {})),
        "calls_of_killed_executors_failed": _calls(calls.get(KILLED, {})),
        "s3_calls_slowed": _slowed(history, run.record.latency_windows),
        "status_events": {
            kind: run.model.planted.get(kind, 0) - _remaining(at_drain, kind) for kind in EVENT_FAULTS
        },
        "malformed_status_messages": run.record.malformed_planted - _remaining(at_drain, "malformed_events"),
        "jobs_failed_before_start": {
            "transient": sum("not found" not in reason for reason in pull_errors),
            "permanent": sum("not found" in reason for reason in pull_errors),
        },
        "jobs_failed_after_start": sum(
            1
            for record in records.values()
            if (record.get("container") or {}).get("exitCode") == FAIL_EXIT_CODE
        ),
        "hosts_terminated_after_start": sum(
            1
            for record in records.values()
            if record.get("status") == "FAILED"
            and record.get("statusReason") == HOST_TERMINATED_REASON
            and record.get("startedAt")
        ),
        "batch_retries_after_start": sum(1 for entry in history if entry["event"] == "retry"),
        "jobs_vanished": len(finals - set(records)),
        "jobs_held_for_capacity": len(run.view.ever_stuck),
        "token_refreshes": _refreshes(history),
        "executor_kills": len(run.record.kills),
        "prunes": [
            {
                "at": round(prune.at - run.record.started_at, 3),
                "deregistered_by_cli": prune.by_cli,
                "deregistered_directly": prune.directly,
            }
            for prune in run.record.prunes
        ],
        "definitions_registered_again_after_a_prune": _registered_after(gathered, run.record.prunes),
    }
    return counts


def injected_kinds(report: dict[str, Any]) -> dict[str, int]:
    """How often each kind of fault happened, one number per kind (for "every kind at least once")."""
    counts, revoked = report["faults_injected"], report["revokes"]["by_stage"]
    kinds = {
        "throttled AWS calls": counts["aws_calls_throttled"]["total"],
        "5xx AWS answers": counts["aws_calls_5xx"]["total"],
        "lost AWS answers": counts["aws_answers_lost"]["total"],
        "throttled adoption look-ups": counts["adoption_lookups_throttled"]["total"],
        "slowed S3 calls": sum(value for key, value in counts["s3_calls_slowed"].items() if key != "windows"),
        **{f"status events: {kind}": value for kind, value in counts["status_events"].items()},
        "malformed status messages": counts["malformed_status_messages"],
        "jobs failed before start (transient)": counts["jobs_failed_before_start"]["transient"],
        "jobs failed before start (permanent)": counts["jobs_failed_before_start"]["permanent"],
        "jobs failed after start": counts["jobs_failed_after_start"],
        "hosts terminated after start": counts["hosts_terminated_after_start"],
        "Batch retries after start": counts["batch_retries_after_start"],
        "vanished jobs": counts["jobs_vanished"],
        "jobs held for capacity": counts["jobs_held_for_capacity"],
        "token refreshes": counts["token_refreshes"],
        "executor kills": counts["executor_kills"],
        "pruned definitions": sum(
            p["deregistered_by_cli"] + p["deregistered_directly"] for p in counts["prunes"]
        ),
        **{f"revokes {stage}": value for stage, value in revoked.items()},
    }
    return kinds


def _calls(by_operation: dict[str, int]) -> dict[str, Any]:
    return {"total": sum(by_operation.values()), **by_operation}


def _remaining(at_drain: dict[str, Any], kind: str) -> int:
    return sum(rule.get("remaining") or 0 for rule in at_drain.get(kind, []))


def _slowed(history: list[dict[str, Any]], windows: list[dict[str, Any]]) -> dict[str, int]:
    operations = {"object_put": "putobject", "object_get": "getobject", "object_delete": "deleteobjects"}
    slowed: Counter[str] = Counter()
    for entry in history:
        operation = operations.get(entry["event"])
        if operation == "deleteobjects" and entry.get("operation") != "deleteobjects":
            continue
        for window in windows:
            if operation in window["operations"] and window["from"] <= entry["at"] <= (
                window["to"] or entry["at"]
            ):
                slowed[operation] += 1
                break
    return {"windows": len(windows), **dict(sorted(slowed.items()))}


def _refreshes(history: list[dict[str, Any]]) -> int:
    """Accepted If-Match rewrites of an object after a job that fetches it was submitted."""
    submitted: set[str] = set()
    count = 0
    for entry in history:
        if entry["event"] == "submit":
            submitted.update(
                str(part) for part in entry.get("command") or [] if str(part).startswith("s3://")
            )
        elif entry["event"] == "object_put" and entry.get("ifMatch") and entry.get("accepted"):
            count += f"s3://{entry['bucket']}/{entry['key']}" in submitted
    return count


def _registered_after(gathered: Gathered, prunes: list[Any]) -> int:
    if not prunes:
        return 0
    first = min(prune.at for prune in prunes)
    from airflow_batch_executor.definitions.derive import MANAGED_TAG, REGISTERED_TAG

    return sum(
        1
        for definition in gathered.definitions
        if (definition.get("tags") or {}).get(MANAGED_TAG) == "true"
        and int((definition.get("tags") or {}).get(REGISTERED_TAG, 0)) >= int(first)
    )


def revokes(tries: list[TryRecord], gathered: Gathered) -> dict[str, Any]:
    """Revokes by the stage the try was at, judged from the history: its job waiting for capacity;
    its object written and SubmitJob not answered when the scheduler revoked it (the executor may then
    never send it), or a job that appeared later but was never reported to the scheduler (its SubmitJob
    was on the wire); or none at all."""
    reported = {event.info for event in gathered.evidence.events if event.state == "running"}
    created: dict[str, list[tuple[float, str]]] = {}
    for entry in gathered.evidence.history:
        if entry["event"] == "submit":
            created.setdefault(entry["jobName"], []).append((entry["at"], entry["jobId"]))
    stages: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for record in tries:
        for queueing in record.queueings:
            if queueing.revoked_at is None:
                continue
            reasons[queueing.revoke_reason or "?"] += 1
            if queueing.job_at_revoke is not None:
                stages["stuck"] += 1
            elif queueing.revoke_reason == "in_flight" or any(
                at > queueing.revoked_at and job_id not in reported
                for at, job_id in created.get(record.job_name, [])
            ):
                stages["in_flight"] += 1
            else:
                stages["before_submit"] += 1
    before_timeout = sum(count for reason, count in reasons.items() if reason in ("early", "stuck"))
    return {
        "total": sum(reasons.values()),
        "by_stage": {REVOKE_STAGES[stage]: stages[stage] for stage in REVOKE_STAGES},
        "by_reason": dict(sorted(reasons.items())),
        "before_the_queued_timeout": before_timeout,
        "tries_failed_by_the_scheduler": sum(1 for record in tries if record.end == "failed_by_scheduler"),
        "tries_handed_back_at_adoption": sum(1 for record in tries if record.end == "handed_back"),
    }


PRUNED_REFUSAL = "is not in ACTIVE status"


def observations(gathered: Gathered) -> dict[str, Any]:
    """Not invariants, but worth a look: conditional rewrites refused on their own retry, workloads
    that ran with an expired token (the execution API would refuse them), and tries failed because
    SubmitJob was refused a pruned job definition (the executor is meant to register it again)."""
    pruned = [
        f"{event.key} ({event.info[:160]})"
        for event in gathered.evidence.events
        if event.state == "failed" and PRUNED_REFUSAL in event.info
    ]
    expired = []
    for entry in gathered.evidence.history:
        if entry["event"] != "workload_run":
            continue
        expires = _expiry(entry.get("token") or "")
        if expires is not None and entry["at"] > expires:
            expired.append(f"{entry['jobId']} ({entry['at'] - expires:.1f}s after expiry)")
    return {
        "conditional_writes_refused_on_their_own_retry": _refused_retries(gathered.evidence.history),
        "workloads_run_with_an_expired_token": len(expired),
        "expired_token_examples": expired[:5],
        "tries_failed_by_a_pruned_definition": len(pruned),
        "pruned_definition_examples": pruned[:5],
    }


def _refused_retries(history: list[dict[str, Any]]) -> int:
    """Conditional PutObjects refused (412) right after one with the same If-Match was accepted: a write
    whose answer was lost, retried by botocore, and refused because its own first attempt changed the
    ETag. The executor takes that refusal for "a job consumed the object"."""
    accepted: dict[str, str] = {}
    count = 0
    for entry in history:
        if entry["event"] != "object_put" or not entry.get("ifMatch"):
            continue
        if entry.get("accepted"):
            accepted[entry["key"]] = entry["ifMatch"]
        elif accepted.get(entry["key"]) == entry["ifMatch"]:
            count += 1
    return count


def _expiry(token: str) -> float | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return float(claims["exp"])
    except (ValueError, KeyError, TypeError):
        return None


def text(report: dict[str, Any], started_at: float) -> str:
    lines = [
        (
            f"Seed {report['seed']}: {report['tasks']} tasks, {report['tries']} tries "
            f"({report['queueings']} queueings), transport {report['parameters']['transport']}, "
            f"status from {report['parameters']['status']}"
        ),
        f"Parameters: {_compact(report['parameters'])}",
        f"Try ends: {_compact(report['try_ends'])}; task states: {_compact(report['task_states'])}",
        "Faults injected (counted where they happened):",
    ]
    for kind, value in report["faults_injected"].items():
        lines.append(f"  {kind.replace('_', ' ')}: {_compact(value)}")
    lines.append(f"Executor restarts: {len(report['executor_restarts'])}")
    for restart in report["executor_restarts"]:
        lines.append(f"  {_compact(restart)}")
    lines.append(f"Revokes: {_compact(report['revokes'])}")
    lines.append(f"Scheduler: {_compact(report['scheduler'])}")
    left = report["objects_left_to_the_lifecycle_rule"]
    lines.append(f"Objects left to the lifecycle rule (only a killed executor knew them): {len(left)}")
    for item in left:
        jobs = ", ".join(item["jobs"]) or "none"
        lines.append(f"  {item['key']} (written by executor {item['writers']}; jobs naming it: {jobs})")
        for entry in item["history"]:
            lines.append(f"      {_entry(entry, started_at)}")
    lines.append(f"Observations: {_compact(report['observations'])}")
    for note in report["notes"]:
        lines.append(f"Note: {note}")
    lines.append(
        f"Wall time: {report['wall_seconds']} s (from the start, in s: {_compact(report['phases'])})"
    )
    violations = report["violations"]
    kinds = Counter(f"[{violation['invariant']}] {violation['kind']}" for violation in violations)
    lines.append(f"Violations: {len(violations)}" + (f" ({_compact(dict(kinds))})" if kinds else ""))
    shown: Counter[str] = Counter()
    for violation in violations:
        kind = f"[{violation['invariant']}] {violation['kind']}"
        shown[kind] += 1
        if shown[kind] > SHOWN_PER_KIND:
            continue
        lines.append(f"  {kind}: {violation['subject']}: {violation['detail']}")
        for entry in violation["history"][:HISTORY_LINES]:
            lines.append(f"      {_entry(entry, started_at)}")
        if len(violation["history"]) > HISTORY_LINES:
            lines.append(f"      … {len(violation['history']) - HISTORY_LINES} more entries")
    for kind, count in kinds.items():
        if count > SHOWN_PER_KIND:
            lines.append(f"  … {count - SHOWN_PER_KIND} more {kind} (all of them in the --json report)")
    return "\n".join(lines)


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key}={_compact(item)}" for key, item in value.items())
    if isinstance(value, list):
        return "[" + "; ".join(_compact(item) for item in value) + "]"
    return str(value)


def _entry(entry: dict[str, Any], started_at: float) -> str:
    fields = {key: value for key, value in entry.items() if key not in ("event", "at", "token")}
    if entry.get("token"):
        fields["token"] = "…"
    return f"+{entry['at'] - started_at:8.3f}s {entry['event']} {json.dumps(fields, default=str)}"


def without_tokens(value: Any) -> Any:
    """The report with every token the history recorded shown as ``…``, as the text report shows them:
    a report is something people paste into issues."""
    if isinstance(value, dict):
        return {key: "…" if key == "token" and item else without_tokens(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_tokens(item) for item in value]
    return value
