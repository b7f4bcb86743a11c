"""The command group Airflow's CLI loads (cheaply: command bodies are imported only when run)."""

from __future__ import annotations

from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand, lazy_load_command

from airflow_batch_executor.job_contract import JOB_STATUSES

COMMANDS = "airflow_batch_executor.cli.commands"
# Airflow renders help text as rich markup, where "[name]" is a style tag and vanishes: escape the
# section name's opening bracket in every help string that shows it.
SECTION_IN_HELP = r"\[aws_batch_executor]"

ARG_DAG_ID_FILTER = Arg(("--dag-id",), help="Only jobs of this DAG")
ARG_STATE = Arg(
    ("--state",),
    help="Only jobs in this Batch status",
    choices=JOB_STATUSES,
)
ARG_QUEUE = Arg(("--job-queue",), help=f"Batch job queue to list (default: {SECTION_IN_HELP} job_queue)")
ARG_LIMIT = Arg(("--limit",), help="Show at most this many jobs (newest first)", type=int, default=100)
ARG_DAG_ID = Arg(("dag_id",), help="The DAG id")
ARG_TASK_ID = Arg(("task_id",), help="The task id")
ARG_RUN_ID = Arg(("--run-id",), help="Run id used for the job name and tags", default="manual__render")
ARG_MAP_INDEX = Arg(("--map-index",), help="Map index of a mapped task", type=int, default=-1)
ARG_TRY = Arg(("--try-number",), help="Try number used for the job name and tags", type=int, default=1)
ARG_TEAM = Arg(
    ("--team",),
    help="Use this team's executor settings (multi-team mode: the team's own "
    f"AIRFLOW__<TEAM>___AWS_BATCH_EXECUTOR__* variables or [<team>={SECTION_IN_HELP[2:]}] section); "
    "default: the global executor's",
)
ARG_VERBOSE = Arg(
    ("-v", "--verbose"),
    help="Also show the log messages of Airflow and the AWS libraries at Airflow's logging level "
    "(by default only their warnings and errors are shown); log messages go to stderr",
    action="store_true",
)
ARG_OFFLINE = Arg(
    ("--offline",),
    help="Do not ask AWS about the queue and job definition (skips the platform and fair-share checks)",
    action="store_true",
)
ARG_OLDER_THAN = Arg(
    ("--older-than",),
    help="Only definitions registered at least this long ago: 30d, 12h, 90m or 45s (default 30d)",
    default="30d",
)
ARG_YES = Arg(
    ("--yes",),
    help="Deregister them; without it the command only lists what it would deregister",
    action="store_true",
)


def get_cli_commands() -> list[GroupCommand]:
    return [
        GroupCommand(
            name="aws-batch-executor",
            help="Inspect and debug the AWS Batch executor",
            subcommands=[
                ActionCommand(
                    name="check",
                    help="Run the start-up health check now, printing each check with its fix",
                    func=lazy_load_command(f"{COMMANDS}.check"),
                    args=(ARG_TEAM, ARG_VERBOSE),
                ),
                ActionCommand(
                    name="options",
                    help=f"List every {SECTION_IN_HELP} option with its description, default and value",
                    func=lazy_load_command(f"{COMMANDS}.options"),
                    args=(ARG_TEAM, ARG_VERBOSE),
                ),
                ActionCommand(
                    name="jobs",
                    help="List this deployment's Batch jobs with their Airflow task, status and age",
                    func=lazy_load_command(f"{COMMANDS}.jobs"),
                    args=(ARG_DAG_ID_FILTER, ARG_STATE, ARG_QUEUE, ARG_LIMIT, ARG_TEAM, ARG_VERBOSE),
                ),
                ActionCommand(
                    name="render",
                    help="Print the exact SubmitJob request the executor would send for a task "
                    "(token redacted)",
                    func=lazy_load_command(f"{COMMANDS}.render"),
                    args=(
                        ARG_DAG_ID,
                        ARG_TASK_ID,
                        ARG_RUN_ID,
                        ARG_MAP_INDEX,
                        ARG_TRY,
                        ARG_OFFLINE,
                        ARG_TEAM,
                        ARG_VERBOSE,
                    ),
                ),
                ActionCommand(
                    name="prune-definitions",
                    help=(
                        "Deregister the job definitions this executor (of --team) derived for tasks, "
                        "unused for --older-than and by every waiting or running job (dry run unless --yes)"
                    ),
                    func=lazy_load_command(f"{COMMANDS}.prune_definitions"),
                    args=(ARG_OLDER_THAN, ARG_YES, ARG_TEAM, ARG_VERBOSE),
                ),
            ],
        )
    ]
