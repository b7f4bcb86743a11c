"""The soak's command line: how many tasks, which seed, and the rate of every fault it injects.

Parsed before Airflow is imported (the soak sets up Airflow's environment first), so nothing here
imports Airflow or the executor.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import asdict, dataclass
from typing import Any

TRANSPORTS = ("s3", "command")
STATUS_SOURCES = ("events", "polling")


@dataclass(frozen=True)
class SoakOptions:
    """Everything a soak run depends on; with the same values and seed it makes the same plan."""

    tasks: int = 2000
    seed: int = 0
    transport: str = "s3"
    status: str | None = None
    """``events`` or ``polling``; None draws it from the seed."""
    queued_timeout: float = 15.0
    token_lifetime: float = 8.0
    parallelism: int = 150
    executor_parallelism: int = 1000
    submit_rate: float = 50.0
    submit_concurrency: int = 4
    step_delay: float = 0.02
    inline_run_seconds: float = 0.05
    throttle_rate: float = 0.03
    server_error_rate: float = 0.01
    lost_answer_rate: float = 0.01
    fail_before_start_rate: float = 0.03
    fail_after_start_rate: float = 0.02
    host_terminated_rate: float = 0.02
    retry_after_start_rate: float = 0.02
    vanish_rate: float = 0.01
    event_fault_rate: float = 0.04
    malformed_events: int = 24
    revoke_rate: float = 0.04
    stuck_rate: float = 0.02
    image_rate: float = 0.15
    s3_latency_share: float = 0.25
    s3_latency_seconds: float = 0.05
    submit_latency_seconds: float = 0.05
    kills: int | None = None
    """Executor kills; None draws 1 or 2 from the seed."""
    prunes: int = 1
    timeout: float = 1800.0
    settle_seconds: float = 75.0
    stall_seconds: float = 120.0
    json_path: str | None = None
    executor_log: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a rate between 0 and 1")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def parser() -> argparse.ArgumentParser:
    defaults = SoakOptions()
    p = argparse.ArgumentParser(
        prog="scripts/soak",
        description="A seeded fault soak: task instance tries through one AwsBatchExecutor at a time, "
        "only through the scheduler's interface, against an in-process local Batch (inline jobs); "
        "then invariants checked on the local Batch's own history. Exit code 0 only without violations.",
    )
    p.add_argument("--tasks", type=int, default=defaults.tasks, help="task instances (default %(default)s)")
    p.add_argument("--seed", type=int, default=None, help="seed of the fault plan (default: random, printed)")
    p.add_argument("--transport", choices=TRANSPORTS, default=defaults.transport)
    p.add_argument(
        "--status", choices=STATUS_SOURCES, default=None, help="job status source (default: from the seed)"
    )
    p.add_argument(
        "--queued-timeout",
        type=_positive,
        default=defaults.queued_timeout,
        help="the model scheduler revokes a task queued this long whose job has not started (seconds)",
    )
    p.add_argument(
        "--token-lifetime",
        type=_positive,
        default=defaults.token_lifetime,
        help="[scheduler] task_queued_timeout and [execution_api] jwt_expiration_time: workload token "
        "lifetime (seconds), short so that waiting jobs get their tokens refreshed",
    )
    p.add_argument(
        "--parallelism",
        type=int,
        default=defaults.parallelism,
        help="the model scheduler keeps at most this many tries queued or running (%(default)s)",
    )
    p.add_argument(
        "--executor-parallelism",
        type=int,
        default=defaults.executor_parallelism,
        help="[core] parallelism of the executors (%(default)s): headroom above --parallelism, so slots an "
        "executor fails to free do not stop the run (they are reported as violations)",
    )
    p.add_argument(
        "--submit-rate",
        type=_positive,
        default=defaults.submit_rate,
        help="[aws_batch_executor] submit_rate_limit of the executors (%(default)s: AWS's own SubmitJob "
        "limit, so the executor's rate limiting stays on without being the only bottleneck)",
    )
    p.add_argument("--submit-concurrency", type=int, default=defaults.submit_concurrency)
    p.add_argument(
        "--step-delay", type=float, default=defaults.step_delay, help="local Batch seconds per status"
    )
    p.add_argument("--inline-run-seconds", type=float, default=defaults.inline_run_seconds)
    rates = p.add_argument_group("fault rates (0 turns a kind off)")
    for name, help_text in (
        ("throttle_rate", "per AWS call of the executor: throttled (429 / S3 SlowDown)"),
        ("server_error_rate", "per AWS call: a 5xx answer"),
        ("lost_answer_rate", "per AWS call: the server processes it, the answer is lost"),
        (
            "fail_before_start_rate",
            "per try: its job fails before start (transient, permanent, or every attempt)",
        ),
        ("fail_after_start_rate", "per try: its container exits non-zero after the workload ran"),
        ("host_terminated_rate", "per try: the host dies while the container runs"),
        ("retry_after_start_rate", "per try: Batch runs the job again after its container ran"),
        ("vanish_rate", "per try: the job disappears from DescribeJobs/ListJobs once final"),
        ("event_fault_rate", "per try (events): a status event dropped, duplicated, delayed or reordered"),
        ("revoke_rate", "per try: revoked by the scheduler (early, while stuck, or at the queued timeout)"),
        ("stuck_rate", "per try: waits for capacity long enough for a token refresh, then starts"),
        ("image_rate", "per task: an image of its own, so it runs on a derived job definition"),
        ("s3_latency_share", "share of the run with S3 latency on PutObject/GetObject/DeleteObjects"),
    ):
        flag = "--" + name.replace("_", "-")
        rates.add_argument(
            flag, type=_rate, default=getattr(defaults, name), help=f"{help_text} (%(default)s)"
        )
    rates.add_argument("--s3-latency-seconds", type=float, default=defaults.s3_latency_seconds)
    rates.add_argument(
        "--submit-latency-seconds",
        type=float,
        default=defaults.submit_latency_seconds,
        help="latency of every SubmitJob until faults stop, as AWS answers (%(default)s): revokes then "
        "land while a SubmitJob is on the wire",
    )
    rates.add_argument(
        "--malformed-events", type=int, default=defaults.malformed_events, help="malformed status messages"
    )
    rates.add_argument(
        "--kills", type=int, default=None, help="executor kills (default: 1 or 2, from the seed)"
    )
    rates.add_argument(
        "--prunes", type=int, default=defaults.prunes, help="derived definition prunes mid-run"
    )
    p.add_argument(
        "--timeout", type=_positive, default=defaults.timeout, help="give up after this many seconds"
    )
    p.add_argument(
        "--settle-seconds",
        type=_positive,
        default=defaults.settle_seconds,
        help="at the end, how long the executor may take to stop the jobs of finished tries",
    )
    p.add_argument(
        "--stall-seconds",
        type=_positive,
        default=defaults.stall_seconds,
        help="stop when nothing at all happened for this long (tries left without an outcome are violations)",
    )
    p.add_argument("--json", dest="json_path", default=None, help="also write the report as JSON here")
    p.add_argument("--executor-log", default=None, help="also write everything the executor logged here")
    return p


def parse(argv: list[str] | None = None) -> SoakOptions:
    """The options; a missing seed is drawn at random (and printed by the caller)."""
    args = vars(parser().parse_args(argv))
    if args["seed"] is None:
        args["seed"] = random.SystemRandom().randrange(1, 10**9)
    if min(args["tasks"], args["parallelism"], args["executor_parallelism"], args["submit_concurrency"]) < 1:
        parser().error(
            "--tasks, --parallelism, --executor-parallelism and --submit-concurrency must be at least 1"
        )
    return SoakOptions(**args)
