"""``python -m batch_devtools.local_batch``: serve a local Batch until SIGINT/SIGTERM.

Only shell lines (``export`` lines and a comment) go to stdout, so they can be captured or
pasted; logs go to stderr. ``--ready-file`` writes the environment as JSON once the server accepts
requests, which is how a harness that started it in a subprocess learns a ``--port 0`` port.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from batch_devtools.local_batch.runtime import JOB_MODES, PROCESS
from batch_devtools.local_batch.server import LocalBatch

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m batch_devtools.local_batch",
        description="Run AWS Batch locally (moto) on 127.0.0.1; jobs run as local processes.",
    )
    parser.add_argument("--port", type=int, default=4566, help="port on 127.0.0.1; 0 picks a free one")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument(
        "--step-delay", type=float, default=0.1, help="seconds spent in each status before RUNNING"
    )
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="multiplier for job timeouts (attemptDurationSeconds)"
    )
    parser.add_argument(
        "--kill-grace-seconds",
        type=float,
        default=2.0,
        help="seconds between SIGTERM and SIGKILL when a job is stopped",
    )
    parser.add_argument(
        "--job-mode",
        choices=JOB_MODES,
        default=PROCESS,
        help="process: jobs run their command as local processes; hold: jobs run nothing (no thread, "
        "no process) and stay RUNNING until terminated or --hold-seconds pass (load tests); inline: "
        "the executor's workload commands run in the job's thread (the real S3 bootstrap fetch, then "
        "a recorded stand-in for the Task SDK), other commands as processes (fault soaks)",
    )
    parser.add_argument(
        "--hold-seconds",
        type=float,
        default=None,
        help="hold mode: seconds a job stays RUNNING before it succeeds (default: until terminated)",
    )
    parser.add_argument(
        "--inline-run-seconds",
        type=float,
        default=0.05,
        help="inline mode: seconds a workload runs before its container exits 0",
    )
    parser.add_argument(
        "--publish-events",
        action="store_true",
        help='publish a "Batch Job State Change" event to the status queue (status_queue_url in the '
        "ready environment) on every job status change, as EventBridge would",
    )
    parser.add_argument("--ready-file", help="write the ready environment as JSON to this path")
    parser.add_argument("--log-level", default="INFO", help="logging level for stderr")
    return parser


def _write_ready_file(path: str, payload: dict[str, str]) -> None:
    """Write atomically, so a poller never reads half a file."""
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        json.dump(payload, handle)
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    stop_requested = threading.Event()
    previous_handlers = _install_stop_handlers(stop_requested)
    try:
        return _serve(args, stop_requested)
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)


def _install_stop_handlers(stop_requested: threading.Event) -> dict[int, Any]:
    """Turn SIGINT/SIGTERM into a clean shutdown; returns the handlers to restore afterwards."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("Received %s; shutting down", signal.Signals(signum).name)
        stop_requested.set()

    previous: dict[int, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, request_stop)
    return previous


def _serve(args: argparse.Namespace, stop_requested: threading.Event) -> int:
    local_batch = LocalBatch(
        port=args.port,
        region=args.region,
        step_delay=args.step_delay,
        time_scale=args.time_scale,
        kill_grace_seconds=args.kill_grace_seconds,
        job_mode=args.job_mode,
        hold_seconds=args.hold_seconds,
        inline_run_seconds=args.inline_run_seconds,
        publish_events=args.publish_events,
    )
    try:
        local_batch.start()
    except OSError as err:
        logger.error("Cannot start the local Batch on 127.0.0.1:%s: %s", args.port, err)
        return 1
    try:
        environment = local_batch.environment
        print("\n".join(environment.export_lines()), flush=True)
        print(f"# second job queue (queue routing): {environment.second_job_queue}", flush=True)
        if args.ready_file:
            _write_ready_file(args.ready_file, environment.to_dict())
        logger.info(
            "Serving on %s; faults at %s/_local_batch/faults; Ctrl-C to stop",
            local_batch.endpoint_url,
            local_batch.endpoint_url,
        )
        while not stop_requested.wait(0.5):
            pass
    finally:
        local_batch.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
