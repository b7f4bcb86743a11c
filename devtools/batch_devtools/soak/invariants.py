"""The soak's invariants, as pure functions of what the local Batch recorded and what the executor
told the scheduler (never of the executor's internals):

1. every task try's workload ran at most once;
2. every try got exactly one outcome (none for a queueing after its revoke, or a try handed back at
   adoption), and it matches what its jobs did: success only if its workload ran and a job of the try
   SUCCEEDED; failed only if no job of the try SUCCEEDED, except a job that vanished from Batch (the
   executor cannot see its end, so it fails the try);
3. no job is alive for a finished, failed or revoked try: none is left once every try is over, none
   starts after its try was over, and the executor counts none of them as running any more (it would
   keep their slots: ``slots_available`` is what the scheduler reads before queueing more);
4. no workload object is left, except those only a killed executor wrote whose job (if any) no later
   executor was handed at adoption, or vanished from Batch before one could read its record: no job
   was submitted for them, or the killed executor had already stopped their job and died before its
   queued removal; nothing that survived knew of them (an object's key is found only in its job's
   record), so the bucket's lifecycle rule removes them (as after a shutdown that ran out of time);
5. no workload token appears in any job record, job log line, executor log line or CLI output.

Each violation carries the history of its try (the local Batch's entries and the scheduler's and
executor's events, in order), so a failing seed can be read without running it again.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from batch_devtools.soak.records import ExecutorEvent, TryKey, TryRecord

OUTCOMES = ("success", "failed")
_TOKEN_RUN = re.compile(r"[A-Za-z0-9_-]{16,}")
_TRY_ENTRY_EVENTS = ("submit", "attempt_started", "retry", "job_final", "terminate", "fetch", "workload_run")


@dataclass(frozen=True)
class Violation:
    invariant: int
    kind: str
    subject: str
    detail: str
    history: tuple[dict[str, Any], ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "invariant": self.invariant,
            "kind": self.kind,
            "subject": self.subject,
            "detail": self.detail,
            "history": list(self.history),
        }


@dataclass
class Evidence:
    """Everything the checks read, gathered once the run is over."""

    history: list[dict[str, Any]]
    tries: list[TryRecord]
    events: list[ExecutorEvent]
    described: set[str] = field(default_factory=set)
    """Job ids DescribeJobs still returned at the end (the others vanished)."""
    live_after_settle: dict[str, str] = field(default_factory=dict)
    """Job id → status of the jobs not final once every try was over and the executor had time to
    stop them."""
    running_after_settle: list[TryKey] = field(default_factory=list)
    """The tries the last executor still counted as running once every try was over."""
    objects_left: list[str] = field(default_factory=list)
    writers: dict[str, set[int]] = field(default_factory=dict)
    """S3 key → the executors (generations) whose PutObject of it reached S3."""
    killed: set[int] = field(default_factory=set)
    adopted: dict[TryKey, set[str | None]] = field(default_factory=dict)
    """Tries offered to a new executor at adoption → the ``external_executor_id`` they were offered with."""
    tokens: list[str] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    """Where tokens must never appear: source → text."""


class Index:
    """The history arranged by try: job ids by name, and each try's entries."""

    def __init__(self, evidence: Evidence) -> None:
        self.evidence = evidence
        self.jobs_named: dict[str, list[str]] = defaultdict(list)
        self.job_entries: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.runs: dict[TryKey, list[dict[str, Any]]] = defaultdict(list)
        self.key_entries: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in evidence.history:
            job_id = entry.get("jobId")
            if entry["event"] == "submit":
                self.jobs_named[entry["jobName"]].append(job_id)
            if job_id is not None:
                self.job_entries[job_id].append(entry)
            if entry["event"] == "workload_run" and entry.get("dag_id") is not None:
                self.runs[TryKey.of(entry)].append(entry)
            if entry["event"].startswith("object_"):
                self.key_entries[entry["key"]].append(entry)
        self.events_of: dict[TryKey, list[ExecutorEvent]] = defaultdict(list)
        for event in evidence.events:
            self.events_of[event.key].append(event)
        self.tries = {record.key: record for record in evidence.tries}
        self.try_of_name = {record.job_name: record for record in evidence.tries}

    def final_status(self, job_id: str) -> str | None:
        finals = [entry["status"] for entry in self.job_entries[job_id] if entry["event"] == "job_final"]
        return finals[-1] if finals else None

    def try_history(self, record: TryRecord) -> tuple[dict[str, Any], ...]:
        entries = list(record.marks())
        for job_id in self.jobs_named.get(record.job_name, ()):
            entries += [entry for entry in self.job_entries[job_id] if entry["event"] in _TRY_ENTRY_EVENTS]
        for key, key_entries in self.key_entries.items():
            if record.job_name in key:
                entries += key_entries
        entries += [event.entry() for event in self.events_of.get(record.key, ())]
        return tuple(sorted(entries, key=lambda entry: entry["at"]))


def check(evidence: Evidence) -> tuple[list[Violation], list[dict[str, Any]]]:
    """Every violation, and the objects left to the lifecycle rule (with their history)."""
    index = Index(evidence)
    objects, left_to_lifecycle = check_objects(index)
    violations = [
        *check_runs(index),
        *check_outcomes(index),
        *check_live_jobs(index),
        *objects,
        *check_tokens(evidence.tokens, evidence.texts),
    ]
    return violations, left_to_lifecycle


def check_runs(index: Index) -> list[Violation]:
    """1. A try's workload ran at most once."""
    violations = []
    for key, runs in index.runs.items():
        if len(runs) > 1:
            record = index.tries.get(key)
            history = index.try_history(record) if record is not None else tuple(runs)
            jobs = ", ".join(f"{run['jobId']} attempt {run['attempt']}" for run in runs)
            violations.append(
                Violation(1, "ran more than once", str(key), f"ran {len(runs)} times: {jobs}", history)
            )
    return violations


def check_outcomes(index: Index) -> list[Violation]:
    """2. Exactly one outcome per try that is owed one, matching what its jobs did."""
    violations = []
    for key, events in index.events_of.items():
        if key not in index.tries and any(event.state in OUTCOMES for event in events):
            history = tuple(event.entry() for event in events)
            violations.append(Violation(2, "outcome for an unknown try", str(key), "never queued", history))
    for record in index.evidence.tries:
        violations += _outcome_violations(index, record)
    return violations


def _outcome_violations(index: Index, record: TryRecord) -> list[Violation]:
    outcomes = [event for event in index.events_of.get(record.key, ()) if event.state in OUTCOMES]
    last_queued = record.queueings[-1].queued_at if record.queueings else 0.0
    owed_from = last_queued if record.expected_outcomes else float("inf")
    handed_back = record.ended_at if record.end == "handed_back" else float("inf")
    valid = [event for event in outcomes if owed_from <= event.at < handed_back]
    stray = [event for event in outcomes if event not in valid]
    found = []

    def violation(kind: str, detail: str) -> None:
        found.append(Violation(2, kind, str(record.key), detail, index.try_history(record)))

    for event in stray:
        when = (
            "after it was handed back" if event.at >= handed_back else "for a queueing the scheduler revoked"
        )
        violation("outcome after revoke or hand-back", f"{event.state} {when}: {event.info}")
    if len(valid) != record.expected_outcomes:
        violation(
            "outcome count",
            f"{len(valid)} outcome(s) where {record.expected_outcomes} was owed "
            f"({', '.join(event.state for event in valid) or 'none'})",
        )
    job_ids = index.jobs_named.get(record.job_name, [])
    succeeded = [job_id for job_id in job_ids if index.final_status(job_id) == "SUCCEEDED"]
    vanished = [job_id for job_id in succeeded if job_id not in index.evidence.described]
    ran = bool(index.runs.get(record.key))
    if len(valid) == 1:
        outcome = valid[0]
        if outcome.state == "success" and not (ran and succeeded):
            violation(
                "success without a successful run",
                f"reported success, but its workload {'ran' if ran else 'never ran'} and "
                f"{'a job succeeded' if succeeded else 'no job of the try succeeded'}",
            )
        if outcome.state == "failed" and set(succeeded) - set(vanished):
            violation(
                "failed although a job succeeded",
                f"reported failed ({outcome.info}), but job(s) {', '.join(succeeded)} SUCCEEDED",
            )
    if record.expected_outcomes == 0 and ran:
        runs = index.runs[record.key]
        unseen = all(run["jobId"] not in index.evidence.described for run in runs)
        if record.end == "handed_back" and unseen:
            return found  # its job vanished before the new scheduler could find it
        why = "was handed back at adoption as having no job" if record.end == "handed_back" else "was revoked"
        violation("ran although ended without running", f"its workload ran, but the try {why}")
    return found


def check_live_jobs(index: Index) -> list[Violation]:
    """3. No job outlives its try: none left once every try was over, none starting after its try."""
    violations = []
    for job_id, status in sorted(index.evidence.live_after_settle.items()):
        name = next((name for name, ids in index.jobs_named.items() if job_id in ids), "")
        record = index.try_of_name.get(name)
        history = index.try_history(record) if record is not None else tuple(index.job_entries[job_id])
        subject = str(record.key) if record is not None else job_id
        violations.append(Violation(3, "job left alive", subject, f"job {job_id} still {status}", history))
    for key in sorted(set(index.evidence.running_after_settle)):
        record = index.tries.get(key)
        history = index.try_history(record) if record is not None else ()
        violations.append(
            Violation(
                3,
                "finished try still counted as running",
                str(key),
                "the executor still counts this try as running after every try was over, so it holds one "
                "of its parallelism slots for good",
                history,
            )
        )
    for record in index.evidence.tries:
        over = record.finished_at
        if over is None:
            continue
        for job_id in index.jobs_named.get(record.job_name, ()):
            for entry in index.job_entries[job_id]:
                if entry["event"] == "attempt_started" and entry["at"] > over:
                    violations.append(
                        Violation(
                            3,
                            "job started after its try was over",
                            str(record.key),
                            f"job {job_id} attempt {entry['attempt']} started "
                            f"{entry['at'] - over:.3f}s after the try ended ({record.end or 'revoked'})",
                            index.try_history(record),
                        )
                    )
    return violations


def check_objects(index: Index) -> tuple[list[Violation], list[dict[str, Any]]]:
    """4. No workload object left, but those only a killed executor wrote whose job no later executor
    was handed at adoption."""
    evidence = index.evidence
    naming: dict[str, list[str]] = defaultdict(list)
    for entry in evidence.history:
        if entry["event"] == "submit":
            for part in entry.get("command") or []:
                naming[str(part)].append(entry["jobId"])
    violations, lifecycle = [], []
    for key in sorted(evidence.objects_left):
        history = tuple(index.key_entries.get(key, ()))
        writers = evidence.writers.get(key, set())
        jobs = [job_id for uri, ids in naming.items() if uri.endswith(f"/{key}") for job_id in ids]
        record = next((record for name, record in index.try_of_name.items() if name in key), None)
        offered = evidence.adopted.get(record.key, set()) if record is not None else set()
        handed_over = bool(jobs) and (None in offered or any(job_id in offered for job_id in jobs))
        unreadable = bool(jobs) and not set(jobs) & evidence.described
        if writers and writers <= evidence.killed and (not handed_over or unreadable):
            lifecycle.append({"key": key, "writers": sorted(writers), "jobs": jobs, "history": list(history)})
            continue
        if record is not None:
            history = index.try_history(record)
        if handed_over:
            why = f"its job {', '.join(jobs)} was handed to a new executor at adoption"
        else:
            why = "written by an executor that kept running"
        violations.append(Violation(4, "object left", key, f"left in the bucket ({why})", history))
    return violations, lifecycle


def token_pieces(tokens: Iterable[str]) -> dict[str, str]:
    """The distinctive pieces of each token, to look for: a JWT's payload and signature (its header
    is the same for every token), or a whole opaque token."""
    pieces: dict[str, str] = {}
    for token in tokens:
        if not token:
            continue
        parts = token.split(".")
        for part in parts[1:] if len(parts) == 3 else parts:
            if len(part) >= 16:
                pieces[part] = token
    return pieces


def check_tokens(tokens: Iterable[str], texts: Mapping[str, str]) -> list[Violation]:
    """5. No token (or a distinctive piece of one) in any of the texts."""
    pieces = token_pieces(tokens)
    violations = []
    for source, text in texts.items():
        leaked = {pieces[run] for run in _TOKEN_RUN.findall(text) if run in pieces}
        for token in sorted(leaked):
            piece = next(piece for piece, owner in pieces.items() if owner == token and piece in text)
            at = text.find(piece)
            excerpt = text[max(0, at - 120) : at + len(piece) + 40].replace("\n", " ")
            for other, owner in pieces.items():
                if owner == token:
                    excerpt = excerpt.replace(other, "<token piece>")
            violations.append(Violation(5, "token leaked", source, f"a workload token appears: …{excerpt}…"))
    return violations
