"""One measured run: one executor, N queued tasks, driven like the scheduler drives it.

Runs in its own process (``python benchmarks/harness.py --executor ours --n 1000 ...``), started by
``benchmarks/run.py`` once per executor and size, so runs share no threads, clients or memory. It only
uses the scheduler-facing interface: ``start()``, ``queue_workload()``, ``heartbeat()``,
``get_event_buffer()`` and, for our executor, ``terminate()`` at the end.

Timeline: every workload is queued, then ``heartbeat()`` is called every ``--heartbeat-interval``
seconds (minus the heartbeat's own duration) until every task has a ``running`` event with a job id
(the submission phase), then for ``--steady-seconds`` more with all N jobs RUNNING (steady state).
A watchdog ends the run after ``--time-limit`` seconds even inside a heartbeat that has not returned
(the amazon executor submits every queued task serially inside one heartbeat): the partial result
says so.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

EXECUTORS = {
    "ours": "airflow_batch_executor.AwsBatchExecutor",
    # the same executor with workload_transport = s3://... (set by run.py for this run only)
    "ours-s3": "airflow_batch_executor.AwsBatchExecutor",
    # ours-s3 with array_jobs = True (set by run.py for this run only)
    "ours-arrays": "airflow_batch_executor.AwsBatchExecutor",
    "amazon": "airflow.providers.amazon.aws.executors.batch.batch_executor.AwsBatchExecutor",
}


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_workload(
    index: int, *, dag_id: str, run_id: str, dag_version_id: uuid.UUID, mapped: bool = False
) -> Any:
    """An ExecuteTask workload with the fields the scheduler fills in (as tests/integration do): task
    ``task_<index>``, or ``mapped``'s instance ``index`` (one task mapped over N)."""
    from airflow.executors.workloads import BundleInfo, ExecuteTask
    from airflow.executors.workloads.task import TaskInstanceDTO

    task_id = "mapped" if mapped else f"task_{index:05d}"
    ti = TaskInstanceDTO(
        id=uuid.uuid4(),
        task_id=task_id,
        dag_id=dag_id,
        run_id=run_id,
        try_number=1,
        map_index=index if mapped else -1,
        dag_version_id=dag_version_id,
        queue="default",
        pool_slots=1,
        priority_weight=1,
        executor_config=None,
    )
    return ExecuteTask(
        ti=ti,
        dag_rel_path="dags/bench.py",
        bundle_info=BundleInfo(name="dags-folder"),
        log_path=f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt=1.log",
        token="workload-token",
    )


def key_of(ti: Any) -> list[Any]:
    """A JSON-able task instance try key: [dag_id, task_id, run_id, try_number, map_index]."""
    return [ti.dag_id, ti.task_id, ti.run_id, ti.try_number, ti.map_index]


def load_executor(name: str, parallelism: int, executors: dict[str, str] = EXECUTORS) -> Any:
    """A new instance of the executor class ``executors[name]`` names."""
    module_name, _, class_name = executors[name].rpartition(".")
    module = __import__(module_name, fromlist=[class_name])
    return getattr(module, class_name)(parallelism=parallelism)


class Run:
    """The measurements of one run; ``write()`` can be called from the watchdog mid-heartbeat."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.lock = threading.Lock()
        self.written = False
        self.t0: float | None = None
        self.heartbeats: list[dict[str, Any]] = []
        self.heartbeat_started: float | None = None
        self.running_events: dict[tuple, list[str]] = {}
        self.other_events: dict[str, int] = {}
        self.submitted_at: float | None = None
        self.rss_baseline_mb = 0.0
        self.queued_keys: list[list[Any]] = []
        self.start_seconds = 0.0
        self.queue_seconds = 0.0
        self.notes: list[str] = []

    def write(self, *, timed_out: bool) -> None:
        with self.lock:
            if self.written:
                return
            self.written = True
            now = time.monotonic()
            in_progress = None
            if self.heartbeat_started is not None and self.t0 is not None:
                in_progress = {
                    "t": round(self.heartbeat_started - self.t0, 4),
                    "duration_so_far": round(now - self.heartbeat_started, 4),
                }
            steady = [hb["duration"] for hb in self.heartbeats if hb["phase"] == "steady"]
            all_durations = [hb["duration"] for hb in self.heartbeats]
            if in_progress is not None:
                all_durations.append(in_progress["duration_so_far"])
            result = {
                "executor": self.args.executor,
                "n": self.args.n,
                "latency": self.args.latency,
                "finished": not timed_out,
                "time_limit": self.args.time_limit,
                "elapsed": round(now - self.t0, 3) if self.t0 is not None else 0.0,
                "start_seconds": round(self.start_seconds, 4),
                "queue_seconds": round(self.queue_seconds, 4),
                "submitted_events": len(self.running_events),
                "submit_seconds": round(self.submitted_at, 3) if self.submitted_at is not None else None,
                "submits_per_second": (
                    round(self.args.n / self.submitted_at, 2) if self.submitted_at else None
                ),
                "max_heartbeat": round(max(all_durations), 6) if all_durations else None,
                "max_heartbeat_is_lower_bound": bool(
                    in_progress is not None
                    and all_durations
                    and in_progress["duration_so_far"] >= max(all_durations)
                ),
                "heartbeat_in_progress": in_progress,
                "steady_heartbeats": len(steady),
                "steady_heartbeat_mean": round(sum(steady) / len(steady), 6) if steady else None,
                "steady_heartbeat_max": round(max(steady), 6) if steady else None,
                "heartbeats": self.heartbeats,
                "rss_baseline_mb": round(self.rss_baseline_mb, 1),
                "rss_peak_mb": round(_peak_rss_mb(), 1),
                "rss_peak_delta_mb": round(_peak_rss_mb() - self.rss_baseline_mb, 1),
                "queued_keys": self.queued_keys,
                "running_events": [[list(key), ids] for key, ids in self.running_events.items()],
                "other_events": self.other_events,
                "notes": self.notes,
            }
            Path(self.args.out).write_text(json.dumps(result))


def watchdog(run: Run, deadline: float) -> None:
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if run.written:
            return
    run.notes.append(f"stopped by the time limit ({run.args.time_limit:g}s)")
    run.write(timed_out=True)
    sys.stdout.flush()
    os._exit(0)


def init_db() -> None:
    """Create the metadata tables (no migrations: a few seconds) in $AIRFLOW_HOME's sqlite file.

    Our executor reads a task's ``execution_timeout`` from its serialized DAG version, as it does
    in a scheduler; without tables every lookup would fail (and be retried) instead.
    """
    from airflow import settings
    from airflow.models import import_all_models
    from airflow.models.base import Base

    import_all_models()
    Base.metadata.create_all(settings.engine)


def tracker_memory(n: int, out: str) -> None:
    """tracemalloc'd bytes per entry of our JobTracker, with and without the kept SubmitJob request.

    The request is kept until the container starts (to resubmit a job that failed before starting)
    and dropped once the job is RUNNING; each entry here gets its own request, built as
    the executor builds it.
    """
    import gc
    import tracemalloc

    from airflow_batch_executor.options import load_options
    from airflow_batch_executor.records import Submission, TrackedJob
    from airflow_batch_executor.requests.factory import RequestFactory
    from airflow_batch_executor.requests.task_specs import ExecutionTimeouts, workload_spec
    from airflow_batch_executor.status.tracker import JobTracker

    settings = {
        "job_queue": "airflow-local-queue",
        "job_definition": "airflow-local-job",
        "job_name": "bench",
    }
    conf = SimpleNamespace(get=lambda section, key, fallback=None: settings.get(key, fallback))
    factory = RequestFactory(load_options(conf), api_url="http://x/execution/", default_queue="default")
    dag_version_id = uuid.uuid4()
    workloads = [
        make_workload(i, dag_id="bench", run_id="memory", dag_version_id=dag_version_id) for i in range(n)
    ]
    timeouts = ExecutionTimeouts()
    requests = [factory.build(workload_spec(w, timeouts)) for w in workloads]
    job_ids = [str(uuid.uuid4()) for _ in range(n)]
    result: dict[str, Any] = {"n": n}
    for label, keep_request in (("running", False), ("pending_with_request", True)):
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        tracker = JobTracker()
        for index, workload in enumerate(workloads):
            tracker.add(
                TrackedJob(
                    job_id=job_ids[index],
                    key=workload.ti.key,
                    job_name=requests[index]["jobName"],
                    job_queue=requests[index]["jobQueue"],
                    attempt=1,
                    submitted_at=time.time(),
                    submission=(
                        Submission(workload.ti.key, json.loads(json.dumps(requests[index])))
                        if keep_request
                        else None
                    ),
                )
            )
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        total = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        result[f"bytes_per_job_{label}"] = round(total / n)
        del tracker
    result["note"] = (
        "job id, key and job name strings are shared with objects that exist anyway (event buffer, "
        "request) and are not counted; the request variant counts a private copy of the request"
    )
    Path(out).write_text(json.dumps(result))


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--prepare"]:
        # --prepare [TRACKER_ENTRIES OUT]: create the metadata tables, then measure JobTracker memory.
        init_db()
        if len(argv) == 3 and int(argv[1]) > 0:
            tracker_memory(int(argv[1]), argv[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executor", choices=sorted(EXECUTORS), required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--latency", type=float, default=0.05, help="recorded only; set on the server")
    parser.add_argument("--time-limit", type=float, default=150.0)
    parser.add_argument("--heartbeat-interval", type=float, default=0.2)
    parser.add_argument("--steady-seconds", type=float, default=8.0)
    parser.add_argument("--min-steady-heartbeats", type=int, default=3)
    parser.add_argument("--mapped", action="store_true", help="one task mapped over N, not N tasks")
    parser.add_argument(
        "--profile-slowest",
        metavar="PATH",
        help="cProfile every heartbeat; dump the slowest one's stats to PATH (pstats format)",
    )
    args = parser.parse_args(argv)

    import logging

    logging.getLogger().setLevel(logging.WARNING)
    from airflow.utils.state import TaskInstanceState

    run = Run(args)
    dag_version_id = uuid.uuid4()
    workloads = [
        make_workload(
            index,
            dag_id="bench",
            run_id=f"{args.executor}-{args.n}",
            dag_version_id=dag_version_id,
            mapped=args.mapped,
        )
        for index in range(args.n)
    ]
    run.queued_keys = [key_of(item.ti) for item in workloads]
    for name in ("airflow", "airflow_batch_executor", "botocore", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)

    # A scheduler has used the ORM long before it heartbeats its executor; configure the mappers now
    # (about 1 s, once per process) so that the first heartbeat does not pay for it.
    from sqlalchemy.orm import configure_mappers

    configure_mappers()
    executor = load_executor(args.executor, parallelism=args.n + 10)
    run.rss_baseline_mb = _rss_mb()
    started = time.monotonic()
    executor.start()
    run.start_seconds = time.monotonic() - started

    started = time.monotonic()
    for item in workloads:
        executor.queue_workload(item, session=None)
    run.queue_seconds = time.monotonic() - started

    run.t0 = time.monotonic()
    threading.Thread(target=watchdog, args=(run, run.t0 + args.time_limit), daemon=True).start()
    steady_since: float | None = None
    steady_count = 0
    slowest = 0.0
    while True:
        begin = time.monotonic()
        run.heartbeat_started = begin
        if args.profile_slowest:
            import cProfile

            profiler = cProfile.Profile()
            profiler.runcall(executor.heartbeat)
        else:
            executor.heartbeat()
        end = time.monotonic()
        if args.profile_slowest and end - begin > slowest:
            slowest = end - begin
            profiler.dump_stats(args.profile_slowest)
        events = executor.get_event_buffer()
        with run.lock:
            run.heartbeat_started = None
            phase = "submit" if run.submitted_at is None else "steady"
            for key, (state, info) in events.items():
                if state == TaskInstanceState.RUNNING or str(state) == "running":
                    if info:
                        run.running_events.setdefault(tuple(key_of(key)), []).append(str(info))
                else:
                    run.other_events[str(state)] = run.other_events.get(str(state), 0) + 1
            run.heartbeats.append(
                {
                    "t": round(begin - run.t0, 4),
                    "duration": round(end - begin, 6),
                    "phase": phase,
                    "submitted": len(run.running_events),
                }
            )
            if run.submitted_at is None and len(run.running_events) >= args.n:
                run.submitted_at = end - run.t0
                steady_since = end
        if phase == "steady":
            steady_count += 1
            assert steady_since is not None
            if end - steady_since >= args.steady_seconds and steady_count >= args.min_steady_heartbeats:
                break
        time.sleep(max(0.0, args.heartbeat_interval - (time.monotonic() - begin)))

    if args.executor == "ours":
        # Leaves the Batch jobs running (terminate_jobs_on_shutdown is off) and stops the threads.
        executor.terminate()
    else:
        # The amazon executor's terminate() sends TerminateJob serially for every job and then end()
        # resubmits the jobs it sees FAILED; neither is part of what is measured, so it is not called.
        run.notes.append("terminate() not called (serial TerminateJob per job, then resubmission in end())")
    run.write(timed_out=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
