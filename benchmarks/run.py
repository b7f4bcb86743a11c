"""Our AwsBatchExecutor vs the amazon provider's, side by side, against one local Batch.

    .venv/bin/python benchmarks/run.py                      # N = 100, 1000, 5000 at 50 ms per call
    .venv/bin/python benchmarks/run.py --sizes 100 --latency 0.01
    .venv/bin/python benchmarks/run.py --scenario status    # job status at 20,000 running jobs
    .venv/bin/python benchmarks/run.py --scenario burst     # 10,000 job-end events at once

The ``submit`` scenario (default) is described below; ``status`` is in ``benchmarks/status_harness.py``
(events vs polling vs the amazon executor, each against a fresh local Batch holding N RUNNING jobs);
``burst`` is in ``benchmarks/burst.py`` (one long poll vs the scaled receiver, on a stub SQS queue).

The local Batch runs in its own process in hold mode (jobs go SUBMITTED → … → RUNNING and stay
there, with neither a thread nor a process per job) with ``--latency`` seconds added to every API
call. Each (executor, N) run is a separate child process (``benchmarks/harness.py``) that queues N
ExecuteTask workloads and drives the executor through the scheduler-facing interface only. Between
runs the server's SubmitJob log and API call counters are reset, and read back after each run.

Output: a table on stdout, ``benchmarks/results/results.json`` (raw numbers, heartbeat series) and
``benchmarks/results/heartbeat.png`` (needs matplotlib; skipped with a message without it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from airflow_batch_executor.job_contract import split_s3_uri
from airflow_batch_executor.recovery.manifest import manifest_key
from benchmarks.report import (
    burst_table,
    check_correctness,
    expand_arrays,
    plot,
    status_plot,
    status_table,
    table,
)
from benchmarks.server import BatchServer

HARNESS = ROOT / "benchmarks" / "harness.py"
STATUS_HARNESS = ROOT / "benchmarks" / "status_harness.py"
EXECUTORS = ("ours", "ours-s3", "amazon")
MAPPED_EXECUTORS = ("ours-arrays", "ours-s3", "amazon")
"""The mapped scenario: one task mapped over N, sent as array jobs, as plain S3-mode jobs, by amazon's."""
STATUS_EXECUTORS = ("ours-events", "ours-polling", "amazon")
BURST_COLUMNS = ("one-loop", "scaled")
"""One long poll at a time (status_receive_concurrency 1), and up to --receive-concurrency of them."""
S3_PREFIX = "benchmark"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenario",
        choices=("submit", "mapped", "status", "burst"),
        default="submit",
        help="submit: time to submit N tasks (default); status: N jobs running, events vs polling; "
        "burst: N job-end events on the status queue at once",
    )
    parser.add_argument(
        "--sizes", default=None, help="comma-separated N (submit: 100,1000,5000; status: 20000; burst: 10000)"
    )
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every API call (0.05)")
    parser.add_argument(
        "--executors",
        default=None,
        help="submit: ours,ours-s3,amazon; status: ours-events,ours-polling,amazon; burst: one-loop,scaled "
        "(all by default)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=150.0,
        help="seconds per (executor, N) run before it is stopped and reported as not finished (150)",
    )
    parser.add_argument("--steady-seconds", type=float, default=8.0, help="steady-state measuring time (8)")
    parser.add_argument(
        "--heartbeat-interval", type=float, default=0.2, help="seconds between heartbeats (0.2)"
    )
    parser.add_argument("--rate", type=float, default=40.0, help="our submit_rate_limit (default 40/s)")
    parser.add_argument(
        "--step-delay", type=float, default=0.05, help="local Batch seconds per status (0.05)"
    )
    parser.add_argument(
        "--tracker-memory", type=int, default=5000, help="JobTracker entries to measure (0: skip)"
    )
    parser.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    status = parser.add_argument_group("status scenario")
    status.add_argument(
        "--ramp-seconds",
        type=float,
        default=120.0,
        help="adoption of the N running jobs spread over this long (120: status_reconcile_interval)",
    )
    status.add_argument("--adopt-chunk", type=int, default=1000, help="task instances per adoption (1000)")
    status.add_argument(
        "--settle-seconds", type=float, default=10.0, help="after the last adoption, before the window (10)"
    )
    status.add_argument("--window", type=float, default=60.0, help="steady window measured, seconds (60)")
    status.add_argument("--latency-jobs", type=int, default=200, help="jobs made to exit for latency (200)")
    status.add_argument(
        "--latency-spread", type=float, default=30.0, help="seconds over which they exit, evenly (30)"
    )
    status.add_argument(
        "--latency-timeout",
        type=float,
        default=120.0,
        help="seconds after the last exit to wait for the executor's events (120)",
    )
    status.add_argument(
        "--poll-interval", type=float, default=2.0, help="our status_poll_interval in both columns (2)"
    )
    burst = parser.add_argument_group("burst scenario")
    burst.add_argument(
        "--receive-concurrency",
        type=int,
        default=8,
        help="status_receive_concurrency of the scaled column (8, the option's default)",
    )
    burst.add_argument(
        "--visibility-timeout",
        type=float,
        default=10.0,
        help="seconds a received message stays invisible (10, as deploy/cloudformation.yaml's queue)",
    )
    args = parser.parse_args(argv)
    defaults = {
        "submit": ("100,1000,5000", EXECUTORS),
        "mapped": ("2000,10000", MAPPED_EXECUTORS),
        "status": ("20000", STATUS_EXECUTORS),
        "burst": ("10000", BURST_COLUMNS),
    }
    sizes, executors = defaults[args.scenario]
    args.sizes = args.sizes or sizes
    args.executors = args.executors or ",".join(executors)
    unknown = set(args.executors.split(",")) - set(executors) - {""}
    if unknown:
        parser.error(f"--executors for the {args.scenario} scenario: {', '.join(executors)}; not {unknown}")
    return args


def child_env(home: Path, environment: dict[str, Any], rate: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    endpoint = environment["endpoint_url"]
    region = environment["region"]
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__API_AUTH__JWT_SECRET="benchmark-secret-0123456789-0123456789",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:9/execution/",
        # [aws_batch_executor] is read by both executors (the amazon one has the same section name).
        AIRFLOW__AWS_BATCH_EXECUTOR__REGION_NAME=region,
        AIRFLOW__AWS_BATCH_EXECUTOR__JOB_QUEUE=environment["job_queue"],
        AIRFLOW__AWS_BATCH_EXECUTOR__JOB_DEFINITION=environment["job_definition"],
        AIRFLOW__AWS_BATCH_EXECUTOR__JOB_NAME="bench",
        AIRFLOW__AWS_BATCH_EXECUTOR__CHECK_HEALTH_ON_STARTUP="True",
        AIRFLOW__AWS_BATCH_EXECUTOR__SUBMIT_RATE_LIMIT=str(rate),
        AIRFLOW_CONN_AWS_DEFAULT=json.dumps(
            {"conn_type": "aws", "extra": {"region_name": region, "endpoint_url": endpoint}}
        ),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=region,
        AWS_ENDPOINT_URL=endpoint,
    )
    return env


def executor_env(executor: str, env: dict[str, str], environment: dict[str, Any]) -> dict[str, str]:
    """``ours-s3`` is our executor handing workloads over through the local Batch's S3 bucket;
    ``ours-arrays`` the same with ``array_jobs`` on."""
    if executor not in ("ours-s3", "ours-arrays"):
        return env
    transport = f"s3://{environment['workload_bucket']}/{S3_PREFIX}"
    arrays = str(executor == "ours-arrays")
    return {
        **env,
        "AIRFLOW__AWS_BATCH_EXECUTOR__WORKLOAD_TRANSPORT": transport,
        "AIRFLOW__AWS_BATCH_EXECUTOR__ARRAY_JOBS": arrays,
    }


def manifest_reader(environment: dict[str, Any]) -> Callable[[str], dict[str, Any]]:
    """Reads an array's manifest from the local Batch's S3, by the delivery directory it is in."""
    s3 = boto3.client(
        "s3",
        endpoint_url=environment["endpoint_url"],
        region_name=environment["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    def read(directory: str) -> dict[str, Any]:
        bucket, key = split_s3_uri(manifest_key(directory))
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    return read


def run_one(
    executor: str, n: int, args: argparse.Namespace, server: BatchServer, env: dict[str, str], work: Path
) -> dict[str, Any]:
    control = server.control
    env = executor_env(executor, env, server.environment)
    control.clear_submitted_requests()
    control.clear_calls()
    out = work / f"{executor}-{n}.json"
    command = [
        sys.executable,
        str(HARNESS),
        "--executor",
        executor,
        "--n",
        str(n),
        "--out",
        str(out),
        "--latency",
        str(args.latency),
        "--time-limit",
        str(args.time_limit),
        "--steady-seconds",
        str(args.steady_seconds),
        "--heartbeat-interval",
        str(args.heartbeat_interval),
        *(["--mapped"] if args.scenario == "mapped" else []),
    ]
    started = time.monotonic()
    child = subprocess.run(
        command, env=env, cwd=ROOT, timeout=args.time_limit + 120, capture_output=True, text=True, check=False
    )
    if child.returncode != 0 or not out.exists():
        raise RuntimeError(f"{executor} N={n} failed ({child.returncode}):\n{child.stderr[-4000:]}")
    result = json.loads(out.read_text())
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    result["api_calls"] = control.calls()
    requests = expand_arrays(control.submitted_requests(), manifest_reader(server.environment))
    result["correctness"] = check_correctness(
        result.pop("queued_keys"), requests, result.pop("running_events")
    )
    control.clear_submitted_requests()
    return result


def status_env(
    executor: str, env: dict[str, str], environment: dict[str, Any], poll: float
) -> dict[str, str]:
    """Events: our executor reads the local Batch's status queue; polling: no queue."""
    env = {**env, "AIRFLOW__AWS_BATCH_EXECUTOR__STATUS_POLL_INTERVAL": str(poll)}
    if executor == "ours-events":
        env["AIRFLOW__AWS_BATCH_EXECUTOR__STATUS_QUEUE_URL"] = environment["status_queue_url"]
    return env


def run_status(executor: str, n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One column of the status scenario, against a fresh local Batch (publishing events for ours-events)."""
    log_path = work / f"local-batch-{executor}-{n}.log"
    with BatchServer(
        step_delay=args.step_delay, log_path=log_path, publish_events=executor == "ours-events"
    ) as server:
        env = status_env(
            executor, child_env(work, server.environment, args.rate), server.environment, args.poll_interval
        )
        if not (work / "airflow.db").exists():  # the metadata tables, once for every column
            subprocess.run(
                [sys.executable, str(HARNESS), "--prepare"],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
        server.control.add_fault("latency", seconds=args.latency)
        out = work / f"status-{executor}-{n}.json"
        command = [
            sys.executable,
            str(STATUS_HARNESS),
            "--executor",
            executor,
            "--n",
            str(n),
            "--out",
            str(out),
            "--latency",
            str(args.latency),
            "--heartbeat-interval",
            str(args.heartbeat_interval),
            "--ramp-seconds",
            str(args.ramp_seconds),
            "--adopt-chunk",
            str(args.adopt_chunk),
            "--settle-seconds",
            str(args.settle_seconds),
            "--window",
            str(args.window),
            "--latency-jobs",
            str(args.latency_jobs),
            "--latency-spread",
            str(args.latency_spread),
            "--latency-timeout",
            str(args.latency_timeout),
        ]
        limit = (
            args.ramp_seconds + args.settle_seconds + args.window + args.latency_spread + args.latency_timeout
        )
        started = time.monotonic()
        child = subprocess.run(
            command, env=env, cwd=ROOT, timeout=limit + 900, capture_output=True, text=True, check=False
        )
        if child.returncode != 0 or not out.exists():
            raise RuntimeError(f"{executor} N={n} failed ({child.returncode}):\n{child.stderr[-4000:]}")
        result = json.loads(out.read_text())
        result["wall_seconds"] = round(time.monotonic() - started, 1)
        result["load_average_after"] = os.getloadavg()
    return result


def main_status(args: argparse.Namespace, sizes: list[int], executors: list[str], results_dir: Path) -> int:
    began = time.monotonic()
    load_before = os.getloadavg()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-airflow-home-") as tmp:
        for n in sizes:
            for executor in executors:
                print(f"status: running {executor} with N={n} ...", file=sys.stderr, flush=True)
                results.append(run_status(executor, n, args, Path(tmp)))
                write_json(results_dir / "status.json", args, results, {}, began, load_before)
    print()
    print(
        f"Status at N running jobs: latency {args.latency * 1000:g} ms per API call; heartbeat every "
        f"{args.heartbeat_interval:g} s; our status_poll_interval {args.poll_interval:g} s; window "
        f"{args.window:g} s; load average before {load_before[0]:.2f}."
    )
    print(status_table(results, executors))
    if status_plot(results, executors, results_dir / "status-heartbeat.png"):
        print(f"plot: {results_dir / 'status-heartbeat.png'}")
    print(f"raw: {results_dir / 'status.json'}; total {time.monotonic() - began:.0f} s")
    return 0


def main_burst(args: argparse.Namespace, sizes: list[int], columns: list[str], results_dir: Path) -> int:
    from benchmarks.burst import run_column  # imports Airflow: only this scenario pays for it here

    began = time.monotonic()
    load_before = os.getloadavg()
    results: list[dict[str, Any]] = []
    for n in sizes:
        for column in columns:
            concurrency = 1 if column == "one-loop" else args.receive_concurrency
            print(f"burst: {column} (concurrency {concurrency}) with N={n} ...", file=sys.stderr, flush=True)
            result = run_column(
                column,
                n,
                concurrency,
                args.latency,
                args.heartbeat_interval,
                args.visibility_timeout,
                args.time_limit,
            )
            result["load_average_after"] = os.getloadavg()
            results.append(result)
            write_json(results_dir / "burst.json", args, results, {}, began, load_before)
    print()
    print(
        f"Burst: N job-end events on the status queue at once; {args.latency * 1000:g} ms per SQS call "
        f"(stub queue); the scheduler drains every {args.heartbeat_interval:g} s; visibility timeout "
        f"{args.visibility_timeout:g} s; scaled: up to {args.receive_concurrency} long polls; load "
        f"average before {load_before[0]:.2f}; times from the moment the events landed."
    )
    print(burst_table(results, columns))
    print(f"raw: {results_dir / 'burst.json'}; total {time.monotonic() - began:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size]
    executors = [name for name in args.executors.split(",") if name]
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    if args.scenario == "status":
        return main_status(args, sizes, executors, results_dir)
    if args.scenario == "burst":
        return main_burst(args, sizes, executors, results_dir)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-airflow-home-") as tmp:
        work = Path(tmp)
        with BatchServer(step_delay=args.step_delay, log_path=work / "local-batch.log") as server:
            env = child_env(work, server.environment, args.rate)
            tracker_out = work / "tracker.json"
            subprocess.run(
                [sys.executable, str(HARNESS), "--prepare", str(args.tracker_memory), str(tracker_out)],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            tracker: dict[str, Any] = json.loads(tracker_out.read_text()) if tracker_out.exists() else {}
            server.control.add_fault("latency", seconds=args.latency)
            results: list[dict[str, Any]] = []
            for n in sizes:
                for executor in executors:
                    print(f"running {executor} with N={n} ...", file=sys.stderr, flush=True)
                    results.append(run_one(executor, n, args, server, env, work))
                    write_json(results_dir / "results.json", args, results, tracker, began)
    print()
    print(
        f"Latency {args.latency * 1000:g} ms per API call; our submit_rate_limit {args.rate:g}/s; "
        f"time limit {args.time_limit:g} s per run; heartbeat every {args.heartbeat_interval:g} s; "
        "memory = peak RSS of the run's process minus its RSS just before start()."
    )
    print(table(results, executors))
    if tracker:
        print(
            f"\nOur JobTracker: {tracker['bytes_per_job_running']} B per RUNNING job, "
            f"{tracker['bytes_per_job_pending_with_request']} B per job still holding its request "
            f"(tracemalloc, {tracker['n']} entries)"
        )
    if plot(results, executors, results_dir / "heartbeat.png"):
        print(f"plot: {results_dir / 'heartbeat.png'}")
    else:
        print("plot skipped: matplotlib is not installed (scripts/benchmark installs it)")
    print(f"raw: {results_dir / 'results.json'}; total {time.monotonic() - began:.0f} s")
    return 0


def write_json(
    path: Path,
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    tracker: dict,
    began: float,
    load_before: tuple[float, float, float] | None = None,
) -> None:
    payload = {
        "settings": vars(args),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        **({"load_average_before": load_before} if load_before is not None else {}),
        "elapsed_seconds": round(time.monotonic() - began, 1),
        "tracker_memory": tracker,
        "runs": results,
    }
    path.write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    sys.exit(main())
