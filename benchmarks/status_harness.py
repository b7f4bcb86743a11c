"""One measured run of the status scenario: one executor watching N jobs that run on a local Batch.

Runs in its own process (``python benchmarks/status_harness.py --executor ours-events --n 20000 ...``),
started by ``benchmarks/run.py --scenario status`` once per executor, against a local Batch of its
own (hold mode, latency added to every API call). Timeline:

1. Setup (not measured): the N jobs are created in the local Batch in one control call per 1,000
   (``POST /_local_batch/jobs``), from the SubmitJob request our executor builds for each task, and
   the harness waits until all are RUNNING. With events, the status queue is then purged: it holds
   the events of those jobs' way to RUNNING, which a scheduler adopting running jobs never sees.
   The local Batch's API call counts are reset.
2. Ramp (``--ramp-seconds``): ``start()``, then ``try_adopt_task_instances`` for ``--adopt-chunk``
   task instances at a time (each with its job id as ``external_executor_id``, as a restarted
   scheduler adopts them), evenly spread over the ramp, with ``heartbeat()`` and
   ``get_event_buffer()`` every ``--heartbeat-interval`` seconds in between. Spreading the
   adoption spreads when each job was last heard of, as jobs submitted over time are; adopting all
   at once would make event mode's reconciliation come in one burst every
   ``status_reconcile_interval``, so that a one-minute window holds either none of it or all of it.
3. Settle (``--settle-seconds``): heartbeats, so that the last chunks' first DescribeJobs are done.
4. Window (``--window``, ends at the first heartbeat boundary after it): N jobs RUNNING, nothing
   changes. Measured: API calls per operation (the local Batch's counts, read at both ends) and
   every heartbeat.
5. Latency: ``--latency-jobs`` jobs spread over all N exit one at a time, at random moments over
   ``--latency-spread`` seconds (``POST /_local_batch/jobs/exit``: SUCCEEDED, exit code 0; the
   answer is the job's ``stoppedAt``). A job's latency runs from that ``stoppedAt`` to the moment
   ``get_event_buffer()`` (called right after each heartbeat) first holds its task's success.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from batch_devtools.local_batch import LocalBatchControl
from benchmarks.harness import key_of, make_workload

OURS = "airflow_batch_executor.AwsBatchExecutor"
EXECUTORS = {
    "ours-events": OURS,  # status_queue_url set by run.py, local Batch publishing events
    "ours-polling": OURS,  # no status queue: DescribeJobs for every job each status_poll_interval
    "amazon": "airflow.providers.amazon.aws.executors.batch.batch_executor.AwsBatchExecutor",
}
CREATE_CHUNK = 1000
FINAL_STATES = ("success", "failed")


def adoptable_task_instance_class() -> type:
    """A task instance as ``try_adopt_task_instances`` reads it from the scheduler's database.

    Both executors read the fields of ``TaskInstanceDTO`` (with ``external_executor_id``) and ``key``;
    the amazon executor also rebuilds each adopted task's command with ``ExecuteTask.make(ti)``,
    which reads the DAG's bundle and file and the run's bundle version.
    """
    from airflow.executors.workloads.task import TaskInstanceDTO

    class AdoptableTaskInstance(TaskInstanceDTO):
        state: str = "running"
        dag_model: Any = None
        dag_run: Any = None

    return AdoptableTaskInstance


def build_requests(workloads: list[Any]) -> list[dict[str, Any]]:
    """The SubmitJob request our executor builds for each workload (the jobs of every column)."""
    from airflow.configuration import conf

    from airflow_batch_executor.options import load_options
    from airflow_batch_executor.requests.factory import RequestFactory
    from airflow_batch_executor.requests.task_specs import ExecutionTimeouts, workload_spec

    factory = RequestFactory(
        load_options(conf), api_url="http://127.0.0.1:9/execution/", default_queue="default"
    )
    timeouts = ExecutionTimeouts()
    return [factory.build(workload_spec(workload, timeouts)) for workload in workloads]


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


class StatusRun:
    """The measurements of one run, written as JSON by ``write()``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t0 = 0.0
        self.setup: dict[str, float] = {}
        self.heartbeats: list[dict[str, Any]] = []
        self.adoptions: list[dict[str, Any]] = []
        self.not_adopted = 0
        self.window: dict[str, Any] = {}
        self.ended_at: dict[str, float] = {}
        self.seen_at: dict[str, float] = {}
        self.other_finals: dict[str, int] = {}
        self.other_events: dict[str, int] = {}
        self.notes: list[str] = []
        self.calls_total: dict[str, int] = {}
        self.finished = False

    def heartbeat_stats(self, phase: str) -> dict[str, Any]:
        durations = [hb["duration"] for hb in self.heartbeats if hb["phase"] == phase]
        return {
            "count": len(durations),
            "mean": round(statistics.fmean(durations), 6) if durations else None,
            "max": round(max(durations), 6) if durations else None,
        }

    def write(self) -> None:
        latencies = [self.seen_at[job] - self.ended_at[job] for job in self.seen_at if job in self.ended_at]
        result = {
            "scenario": "status",
            "executor": self.args.executor,
            "n": self.args.n,
            "latency": self.args.latency,
            "finished": self.finished,
            "setup": self.setup,
            "adopted": sum(item["adopted"] for item in self.adoptions),
            "not_adopted": self.not_adopted,
            "adoptions": self.adoptions,
            "window": self.window,
            "calls_total": self.calls_total,
            "max_heartbeat": max((hb["duration"] for hb in self.heartbeats), default=None),
            "heartbeat_phases": {
                phase: self.heartbeat_stats(phase) for phase in ("ramp", "settle", "window", "latency")
            },
            "latency_sample": len(self.ended_at),
            "latency_seen": len(latencies),
            "latency_median": round(statistics.median(latencies), 4) if latencies else None,
            "latency_p95": round(percentile(latencies, 0.95) or 0.0, 4) if latencies else None,
            "latency_max": round(max(latencies), 4) if latencies else None,
            "latencies": [round(value, 4) for value in latencies],
            "other_final_events": self.other_finals,
            "other_events": self.other_events,
            "heartbeats": self.heartbeats,
            "notes": self.notes,
        }
        Path(self.args.out).write_text(json.dumps(result))


def create_running_jobs(control: LocalBatchControl, requests: list[dict[str, Any]]) -> list[str]:
    """Create one job per request in the local Batch and wait until every one is RUNNING."""
    job_ids: list[str] = []
    for start in range(0, len(requests), CREATE_CHUNK):
        job_ids += control.create_jobs(requests[start : start + CREATE_CHUNK])
    wanted = set(job_ids)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        running = {job["jobId"] for job in control.jobs() if job["status"] == "RUNNING"}
        if wanted <= running:
            return job_ids
        time.sleep(0.5)
    raise RuntimeError(f"{len(wanted - running)} of {len(wanted)} jobs not RUNNING within 120 s")


def purge_status_queue(queue_url: str) -> None:
    """Empty the status queue of the events of the jobs' way to RUNNING, once all are published.

    The local Batch publishes them from one thread (100,000 at 20,000 jobs, several seconds of
    work), so the queue is purged only when its length has stopped growing, and checked empty after.
    """
    import boto3

    sqs = boto3.client("sqs")

    def length() -> int:
        answer = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(answer["Attributes"]["ApproximateNumberOfMessages"])

    deadline = time.monotonic() + 120
    previous = -1
    while time.monotonic() < deadline:
        time.sleep(1.0)
        current = length()
        if current == previous:
            sqs.purge_queue(QueueUrl=queue_url)
            time.sleep(1.0)
            if length() == 0:
                return
        previous = current
    raise RuntimeError("the status queue did not stay empty after a purge within 120 s")


def end_sample(
    control: LocalBatchControl, job_ids: list[str], spread: float, run: StatusRun, lock: threading.Lock
) -> None:
    """Make each sampled job exit, one at a time, at random moments over ``spread`` seconds.

    Random (seeded) rather than evenly spaced moments: even spacing would fall on a few phases of
    the heartbeat and poll cycles only, and the latency depends on that phase.
    """
    began = time.monotonic()
    chance = random.Random(len(job_ids))
    offsets = sorted(chance.uniform(0, spread) for _ in job_ids)
    for offset, job_id in zip(offsets, job_ids, strict=True):
        time.sleep(max(0.0, began + offset - time.monotonic()))
        stopped = control.exit_jobs([job_id])[job_id]
        with lock:
            if stopped is None:
                run.notes.append(f"job {job_id} was not RUNNING when asked to exit")
            else:
                run.ended_at[job_id] = stopped / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executor", choices=sorted(EXECUTORS), required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--latency", type=float, default=0.05, help="recorded only; set on the server")
    parser.add_argument("--heartbeat-interval", type=float, default=0.2)
    parser.add_argument("--ramp-seconds", type=float, default=120.0)
    parser.add_argument("--adopt-chunk", type=int, default=1000)
    parser.add_argument("--settle-seconds", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--latency-spread", type=float, default=30.0)
    parser.add_argument("--latency-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)

    import logging

    logging.getLogger().setLevel(logging.WARNING)
    for name in ("airflow", "airflow_batch_executor", "botocore", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from sqlalchemy.orm import configure_mappers

    from benchmarks.harness import load_executor

    run = StatusRun(args)
    control = LocalBatchControl(os.environ["AWS_ENDPOINT_URL"], timeout=300)
    began = time.monotonic()
    dag_version_id = uuid.uuid4()
    workloads = [
        make_workload(i, dag_id="bench", run_id=f"status-{args.executor}", dag_version_id=dag_version_id)
        for i in range(args.n)
    ]
    requests = build_requests(workloads)
    run.setup["build_seconds"] = round(time.monotonic() - began, 2)
    began = time.monotonic()
    job_ids = create_running_jobs(control, requests)
    run.setup["create_and_run_seconds"] = round(time.monotonic() - began, 2)
    del requests
    queue_url = os.environ.get("AIRFLOW__AWS_BATCH_EXECUTOR__STATUS_QUEUE_URL")
    if queue_url:
        purge_status_queue(queue_url)

    task_instance = adoptable_task_instance_class()
    dag_model = SimpleNamespace(bundle_name="dags-folder", relative_fileloc="dags/bench.py")
    dag_run = SimpleNamespace(bundle_version=None, context_carrier=None)
    tis = [
        task_instance(
            **workload.ti.model_dump(),
            external_executor_id=job_id,
            executor_config=workload.ti.executor_config,
            dag_model=dag_model,
            dag_run=dag_run,
        )
        for workload, job_id in zip(workloads, job_ids, strict=True)
    ]
    del workloads
    job_of_key = {tuple(key_of(ti)): ti.external_executor_id for ti in tis}
    step = max(1, args.n // max(1, args.latency_jobs))
    sample = job_ids[step // 2 :: step][: args.latency_jobs]
    sampled = set(sample)

    configure_mappers()
    executor = load_executor(args.executor, parallelism=args.n + 10, executors=EXECUTORS)
    control.clear_calls()
    executor.start()
    chunks = [tis[start : start + args.adopt_chunk] for start in range(0, len(tis), args.adopt_chunk)]
    run.t0 = time.monotonic()
    ramp_gap = args.ramp_seconds / len(chunks)
    settle_until: float | None = None
    window_start: tuple[float, dict[str, int]] | None = None
    latency_began: float | None = None
    lock = threading.Lock()
    ender: threading.Thread | None = None
    phase = "ramp"
    while True:
        now = time.monotonic()
        if phase == "ramp":
            # every chunk that is due (after a long heartbeat, several), so the ramp keeps its length
            while chunks and time.monotonic() >= run.t0 + len(run.adoptions) * ramp_gap:
                chunk = chunks.pop(0)
                started = time.monotonic()
                left = executor.try_adopt_task_instances(chunk)
                run.adoptions.append(
                    {
                        "t": round(started - run.t0, 3),
                        "seconds": round(time.monotonic() - started, 4),
                        "adopted": len(chunk) - len(left),
                    }
                )
                run.not_adopted += len(left)
            if not chunks:
                phase, settle_until = "settle", time.monotonic() + args.settle_seconds
        elif phase == "settle" and settle_until is not None and now >= settle_until:
            phase, window_start = "window", (time.monotonic(), control.calls())
        elif phase == "window" and window_start is not None and now - window_start[0] >= args.window:
            calls, seconds = control.calls(), time.monotonic() - window_start[0]
            delta = {op: count - window_start[1].get(op, 0) for op, count in calls.items()}
            run.window = {
                "seconds": round(seconds, 2),
                "t_start": round(window_start[0] - run.t0, 2),
                "calls": {op: count for op, count in delta.items() if count},
                "per_minute": {op: round(count * 60 / seconds, 1) for op, count in delta.items() if count},
            }
            phase, latency_began = "latency", time.monotonic()
            ender = threading.Thread(
                target=end_sample, args=(control, sample, args.latency_spread, run, lock), daemon=True
            )
            ender.start()
        elif phase == "latency" and latency_began is not None:
            with lock:
                all_seen = len(run.seen_at) >= len(sample)
            if all_seen or now - latency_began > args.latency_spread + args.latency_timeout:
                if not all_seen:
                    run.notes.append(f"{len(sample) - len(run.seen_at)} sampled job(s) not reported in time")
                break

        begin = time.monotonic()
        executor.heartbeat()
        end = time.monotonic()
        events = executor.get_event_buffer()
        seen = time.time()
        with lock:
            for key, (state, _info) in events.items():
                state = str(getattr(state, "value", state))
                job_id = job_of_key.get(tuple(key_of(key)))
                if state == "success" and job_id in sampled:
                    run.seen_at.setdefault(job_id, seen)
                elif state in FINAL_STATES:
                    run.other_finals[state] = run.other_finals.get(state, 0) + 1
                else:
                    run.other_events[state] = run.other_events.get(state, 0) + 1
            run.heartbeats.append(
                {"t": round(begin - run.t0, 4), "duration": round(end - begin, 6), "phase": phase}
            )
        time.sleep(max(0.0, args.heartbeat_interval - (time.monotonic() - begin)))

    if ender is not None:
        ender.join(timeout=5)
    if args.executor.startswith("ours"):
        executor.terminate()  # leaves the Batch jobs running (terminate_jobs_on_shutdown is off)
    else:
        run.notes.append("terminate() not called (serial TerminateJob per job, then resubmission in end())")
    run.calls_total = control.calls()
    run.finished = True
    run.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
