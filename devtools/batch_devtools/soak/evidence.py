"""What the soak reads once the run is over, from the local Batch and its services as any client would:
the history, every job's DescribeJobs record, every job log line, the objects left, the tokens, and
the texts no token may appear in (job records, SubmitJob requests, job logs, the executor's log, the
task event-log rows, the CLI's output)."""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_batch_executor.cli.commands import jobs as jobs_command
from batch_devtools.local_batch import LocalBatch
from batch_devtools.soak.invariants import Evidence
from batch_devtools.soak.records import TryKey

if TYPE_CHECKING:
    from batch_devtools.soak.run import SoakRun

DESCRIBE_CHUNK = 100
COMMAND_MODE_NOTE = (
    "command transport: the job's command carries the workload (token included) by design, so job "
    "commands are left out of the token scan"
)


@dataclass
class Gathered:
    evidence: Evidence
    records: dict[str, dict[str, Any]]
    definitions: list[dict[str, Any]]
    notes: list[str]
    run: SoakRun


def gather(lb: LocalBatch, run: SoakRun, prefix: str | None) -> Gathered:
    history = lb.history()
    batch = lb.client("batch")
    job_ids = [entry["jobId"] for entry in history if entry["event"] == "submit"]
    records: dict[str, dict[str, Any]] = {}
    for start in range(0, len(job_ids), DESCRIBE_CHUNK):
        for record in batch.describe_jobs(jobs=job_ids[start : start + DESCRIBE_CHUNK])["jobs"]:
            records[record["jobId"]] = record
    command_mode = prefix is None
    notes = [COMMAND_MODE_NOTE] if command_mode else []
    texts = {
        "DescribeJobs records": json.dumps(_scannable(list(records.values()), command_mode), default=str),
        "SubmitJob requests": json.dumps(_scannable(lb.submitted_requests(), command_mode), default=str),
        "job log lines": "\n".join(_log_lines(lb)),
        "executor log (DEBUG)": run.logs.text(),
        "task event-log rows and event infos": "\n".join(
            [line for handle in run.handles for line in handle.event_log_lines]
            + [event.info for event in run.record.events]
        ),
        "prune-definitions output": "\n".join(prune.output for prune in run.record.prunes),
        "jobs CLI output": _jobs_cli_output(),
    }
    tokens = list(lb.workload_tokens()) + run.model.tokens
    tokens += [entry["token"] for entry in history if entry["event"] == "workload_run" and entry.get("token")]
    objects_left = []
    if prefix is not None:
        s3 = lb.client("s3")
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=lb.environment.workload_bucket, Prefix=prefix
        ):
            objects_left += [item["Key"] for item in page.get("Contents", [])]
    definitions = [
        definition
        for page in batch.get_paginator("describe_job_definitions").paginate()
        for definition in page["jobDefinitions"]
    ]
    evidence = Evidence(
        history=history,
        tries=list(run.model.tries.values()),
        events=run.record.events,
        described=set(records),
        live_after_settle=run.live_after_settle,
        running_after_settle=run.running_after_settle,
        objects_left=objects_left,
        writers=run.faults.writers(),
        killed={kill.generation for kill in run.record.kills},
        adopted=_adopted(run),
        tokens=list(dict.fromkeys(tokens)),
        texts=texts,
    )
    return Gathered(evidence, records, definitions, notes, run)


def _adopted(run: SoakRun) -> dict[TryKey, set[str | None]]:
    adopted: dict[TryKey, set[str | None]] = {}
    for kill in run.record.kills:
        for key, job_id in kill.offered.items():
            adopted.setdefault(key, set()).add(job_id)
    return adopted


def _scannable(items: list[dict[str, Any]], command_mode: bool) -> list[dict[str, Any]]:
    """The records to scan; in command mode without their command, which carries the token by design."""
    if not command_mode:
        return items
    items = copy.deepcopy(items)
    for item in items:
        for holder in (item.get("container"), item.get("containerOverrides")):
            if isinstance(holder, dict):
                holder.pop("command", None)
    return items


def _log_lines(lb: LocalBatch) -> list[str]:
    logs = lb.client("logs")
    lines = []
    for page in logs.get_paginator("describe_log_streams").paginate(logGroupName=lb.log_group):
        for stream in page["logStreams"]:
            answer = logs.get_log_events(
                logGroupName=lb.log_group, logStreamName=stream["logStreamName"], startFromHead=True
            )
            lines += [event["message"] for event in answer["events"]]
    return lines


def _jobs_cli_output() -> str:
    """``airflow aws-batch-executor jobs`` over every job of the run, as an operator would list them."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        jobs_command(
            argparse.Namespace(
                job_queue=None, state=None, dag_id=None, limit=100_000, team=None, verbose=None
            )
        )
    return output.getvalue()
