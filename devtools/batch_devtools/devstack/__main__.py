"""``python -m batch_devtools.devstack``: the demo, or a stack to play with until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from batch_devtools.devstack.demo import run_demo
from batch_devtools.devstack.settings import EDITING_DAGS
from batch_devtools.devstack.stack import DevStack


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m batch_devtools.devstack",
        description="Run a real Airflow 3 whose tasks run as jobs of a local AWS Batch.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("demo", "run the example DAGs, print a summary, exit non-zero on a wrong outcome"),
        ("up", "start a stack and keep it running until Ctrl-C"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument(
            "--dags-folder",
            type=Path,
            default=Path("examples"),
            help="folder with the DAG files (default: ./examples)",
        )
        command.add_argument(
            "--database",
            choices=("sqlite", "postgres"),
            default="sqlite",
            help="metadata database; postgres creates a fresh database "
            "(server from DEVSTACK_POSTGRES_URL, default 127.0.0.1:5432)",
        )
        if name == "up":
            command.add_argument(
                "--team",
                dest="teams",
                action="append",
                type=_team,
                default=[],
                metavar="NAME=FOLDER",
                help="Airflow's multi-team mode: a team and the folder of its DAG bundle (repeatable); "
                "--dags-folder is then the global bundle",
            )
    return parser


def _team(value: str) -> tuple[str, Path]:
    name, separator, folder = value.partition("=")
    if not (name and separator and folder):
        raise argparse.ArgumentTypeError(f"{value!r} is not NAME=FOLDER, e.g. team_a=dags/team_a")
    return name, Path(folder)


def _serve(dags_folder: Path, database: str, teams: dict[str, Path]) -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with DevStack(dags_folder, database=database, teams=teams, timing=EDITING_DAGS) as stack:
        print(f"Airflow UI and API: {stack.api.base_url} (all users are admins)")
        for team in teams:
            resources = stack.team_resources(team)
            print(f"Team {team}: job queue {resources.job_queue}, job definition {resources.job_definition}")
        print(f"Local Batch: {stack.environment.endpoint_url}; component logs in {stack.stack_dir}")
        print("Ctrl-C stops everything.", flush=True)
        stop.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    if args.command == "demo":
        return run_demo(args.dags_folder, args.database)
    return _serve(args.dags_folder, args.database, dict(args.teams))


if __name__ == "__main__":
    sys.exit(main())
