"""Bodies of ``airflow aws-batch-executor check | options | jobs | render | prune-definitions``.

They reuse the executor's own pieces (options, health checks, the request factory, the job lookup),
so what they print is what the scheduler does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from airflow_batch_executor.airflow_side.adapter import executor_conf
from airflow_batch_executor.airflow_side.compat import execution_api_url
from airflow_batch_executor.aws.errors import describe_api_error
from airflow_batch_executor.aws.gateway import BatchGateway
from airflow_batch_executor.cli.output import quiet_library_logging
from airflow_batch_executor.definitions.derive import definition_overrides
from airflow_batch_executor.definitions.prune import parse_duration, prune_verdicts
from airflow_batch_executor.definitions.registry import DefinitionRegistry
from airflow_batch_executor.errors import OptionError, TaskConfigError, option_env_var
from airflow_batch_executor.health import run_health_checks
from airflow_batch_executor.job_contract import (
    TAG_CALLBACK_ID,
    TAG_CONNECTION_ID,
    TAG_DAG_ID,
    TAG_MAP_INDEX,
    TAG_RUN_ID,
    TAG_TASK_ID,
    TAG_TRY_NUMBER,
)
from airflow_batch_executor.options import SECTION, ExecutorOptions, load_options
from airflow_batch_executor.provider_info import load_config_description
from airflow_batch_executor.recovery.lookup import deployment_jobs
from airflow_batch_executor.recovery.reclaims import ReclaimHistory
from airflow_batch_executor.requests.factory import RequestFactory, base_request
from airflow_batch_executor.requests.naming import WorkloadIdentity
from airflow_batch_executor.requests.placement import PlacementCatalog
from airflow_batch_executor.requests.queue_ladder import QueueLadder
from airflow_batch_executor.requests.task_specs import JobSpec, task_sdk_command, task_spec
from airflow_batch_executor.rules.author_policy import operator_definitions

WORKLOAD_PLACEHOLDER = "<the task's ExecuteTask workload as JSON, built by the scheduler; token redacted>"


def _conf(args: argparse.Namespace) -> Any:
    """The configuration the executor of ``--team`` (or the global executor) reads."""
    return executor_conf(getattr(args, "team", None))


def _options(args: argparse.Namespace) -> ExecutorOptions:
    try:
        return load_options(_conf(args))
    except OptionError as error:
        print(f"[FAILED] configuration: {error}")
        raise SystemExit(1) from None


def _gateway(options: ExecutorOptions) -> BatchGateway:
    return BatchGateway(options.conn_id, options.region_name, team=options.team_name)


def check(args: argparse.Namespace) -> None:
    """Exit 1 when any check fails, so the command can gate a deployment."""
    quiet_library_logging(args)
    options = _options(args)
    try:
        base = base_request(options)
    except OptionError as error:
        print(f"[FAILED] configuration: {error}")
        raise SystemExit(1) from None
    whose = f" of team {args.team!r}" if args.team else ""
    print(f"[ok] configuration: every [aws_batch_executor] option{whose} is valid")
    gateway = _gateway(options)
    checks = run_health_checks(
        gateway,
        options.job_queue,
        options.job_definition,
        base,
        options.workload_transport,
        options.workload_kms_key_id,
        team=args.team,
        fallback_queues=QueueLadder(options.queue_fallbacks).fallbacks(),
    )
    for item in checks:
        print(item)
    if not all(item.ok for item in checks):
        raise SystemExit(1)


def options(args: argparse.Namespace) -> None:
    """Every option of this executor, including those ``airflow config list`` cannot show.

    The amazon provider registers a section of the same name, and Airflow keeps one provider's
    description per section, so ``airflow config list`` shows only the options both executors share.
    """
    quiet_library_logging(args)
    conf = _conf(args)
    if args.team:
        print(f"Options of the executor of team {args.team!r}: only the team's own values apply.\n")
    for name, spec in load_config_description()[SECTION]["options"].items():
        value = conf.get(SECTION, name, fallback=None)
        default = spec.get("default")
        print(f"{name} ({spec['type']}, default: {default if default not in (None, '') else 'not set'})")
        for line in spec["description"].strip().splitlines():
            print(f"    {line}")
        print(f"    Current value: {value if value not in (None, '') else 'not set'}")
        print(f"    Environment variable: {option_env_var(name, args.team)}")
        print()


def _age(created_ms: int | None, now: float) -> str:
    if not created_ms:
        return "?"
    return _duration(max(0, int(now - created_ms / 1000)))


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _queue_positions(gateway: BatchGateway, queue: str, found: list[dict[str, Any]]) -> dict[str, str]:
    """Each RUNNABLE job's place in line ("3 of 12": third of the 12 jobs at the front), from the
    snapshot Batch keeps of the queue's front.

    The snapshot holds only the first jobs Batch will start; a waiting job behind them has no place
    shown. A scheduler role without ``batch:GetJobQueueSnapshot`` loses only this column.
    """
    if not any(job.get("status") == "RUNNABLE" for job in found):
        return {}
    try:
        front = gateway.front_of_queue(queue)
    except Exception as error:  # noqa: BLE001 - the list is still worth printing without positions
        print(
            f"(queue positions unavailable: {describe_api_error(error)}; they need batch:GetJobQueueSnapshot "
            f"on {queue})",
            file=sys.stderr,
        )
        return {}
    return {arn: f"{index} of {len(front)}" for index, arn in enumerate(front, start=1)}


def jobs(args: argparse.Namespace) -> None:
    quiet_library_logging(args)
    options = _options(args)
    gateway = _gateway(options)
    queue = args.job_queue or options.job_queue
    found = deployment_jobs(
        gateway, queue, options.job_name, args.state, args.dag_id, args.limit, options.team_name
    )
    now = time.time()
    positions = _queue_positions(gateway, queue, found)
    header = ("JOB ID", "STATUS", "AGE", "POSITION", "DAG", "TASK", "MAP", "TRY", "RUN", "REASON")
    rows = [header]
    for job in found:
        tags = job.get("tags") or {}
        rows.append(
            (
                job["jobId"],
                job.get("status", ""),
                _age(job.get("createdAt"), now),
                positions.get(job.get("jobArn", ""), ""),
                tags.get(TAG_DAG_ID, ""),
                tags.get(TAG_TASK_ID)
                or tags.get(TAG_CALLBACK_ID)
                or f"connection test {tags.get(TAG_CONNECTION_ID, '')}",
                tags.get(TAG_MAP_INDEX, ""),
                tags.get(TAG_TRY_NUMBER, ""),
                tags.get(TAG_RUN_ID, ""),
                job.get("statusReason", "") or (job.get("container") or {}).get("reason", ""),
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + "  " + str(row[-1]))
    whose = f" of team {args.team!r}" if args.team else ""
    print(f"{len(found)} job(s){whose} in {queue}")


def _task(dag_id: str, task_id: str) -> Any:
    from airflow.models.serialized_dag import SerializedDagModel

    dag = SerializedDagModel.get_dag(dag_id)
    if dag is None:
        print(
            f"DAG {dag_id!r} is not in the metadata database; "
            "check its id and that the dag-processor parsed it"
        )
        raise SystemExit(1)
    if task_id not in dag.task_ids:
        print(f"DAG {dag_id!r} has no task {task_id!r}; its tasks are: {', '.join(sorted(dag.task_ids))}")
        raise SystemExit(1)
    return dag.get_task(task_id)


def _on_the_ladder(
    factory: RequestFactory, gateway: BatchGateway | None, spec: JobSpec, request: dict[str, Any]
) -> dict[str, Any]:
    """The request on the queue ``queue_fallbacks`` would choose for this try, saying why on stderr."""
    queue = request["jobQueue"]
    if not factory.ladder.has_fallback(queue):
        return request
    if gateway is None:
        print(
            f"(--offline: the reclaims of earlier tries are not looked up; {queue} is shown)", file=sys.stderr
        )
        return request
    history = ReclaimHistory(gateway, factory.ladder, factory.options.job_name)
    choice, reclaims = history.queue_for(spec.identity, queue)
    if choice.reason is None:
        counted = ", ".join(f"{count} on {name}" for name, count in reclaims.items()) or "none"
        print(f"(job queue {queue}: reclaims of earlier tries: {counted}; no fallback yet)", file=sys.stderr)
        return request
    print(f"({choice.reason})", file=sys.stderr)
    return {**request, "jobQueue": choice.queue}


def render(args: argparse.Namespace) -> None:
    """The request after every step the executor applies, so config precedence can be debugged."""
    quiet_library_logging(args)
    from airflow.configuration import conf

    options = _options(args)
    task = _task(args.dag_id, args.task_id)
    identity = WorkloadIdentity(args.dag_id, args.task_id, args.run_id, args.map_index, args.try_number)
    spec = task_spec(task, identity, task_sdk_command(WORKLOAD_PLACEHOLDER))
    try:
        gateway = None if args.offline else _gateway(options)
        factory = RequestFactory(
            options,
            api_url=execution_api_url(_conf(args)),
            default_queue=conf.get("operators", "default_queue", fallback="default"),
            catalog=PlacementCatalog(gateway) if gateway is not None else None,
        )
        request = _on_the_ladder(factory, gateway, spec, factory.build(spec))
        derived = factory.derived_definition(request, spec)
        request = factory.place(request, spec)
    except (TaskConfigError, OptionError) as error:
        print(f"The executor would not submit {args.dag_id}.{args.task_id}: {error}")
        raise SystemExit(1) from None
    if gateway is None and request["jobDefinition"] not in operator_definitions(options):
        print(
            f"(--offline: the roles of job definition {request['jobDefinition']!r} are not checked)",
            file=sys.stderr,
        )
    if derived is None or gateway is None:
        if definition_overrides(spec.executor_config):
            print("(--offline: the task's own job definition fields are not shown)", file=sys.stderr)
        json.dump(request, sys.stdout, indent=2)
        print()
        return
    registered = DefinitionRegistry(gateway).find(derived)
    request["jobDefinition"] = registered or derived.name
    rendered = {
        "submitJob": request,
        "derivedJobDefinition": {
            "derivedFrom": derived.base_name,
            "registeredAs": registered,
            "registerJobDefinition": derived.register_request,
        },
    }
    json.dump(rendered, sys.stdout, indent=2)
    print()
    if registered is None:
        print(
            f"{derived.name} is not registered yet; the first job of this task registers it", file=sys.stderr
        )


def prune_definitions(args: argparse.Namespace) -> None:
    """List (or, with ``--yes``, deregister) the derived definitions nothing needs any more."""
    quiet_library_logging(args)
    options = _options(args)
    try:
        older_than = parse_duration(args.older_than)
    except ValueError as error:
        print(f"--older-than {error}")
        raise SystemExit(1) from None
    gateway = _gateway(options)
    verdicts = prune_verdicts(gateway, older_than, time.time(), options.team_name)
    pruned = 0
    for verdict in verdicts:
        if verdict.prune and args.yes:
            gateway.deregister_job_definition(verdict.arn)
            action = "deregistered"
            pruned += 1
        else:
            action = "would deregister" if verdict.prune else "keep"
        age = _duration(verdict.age_seconds) if verdict.age_seconds is not None else "?"
        definition = f"{verdict.name}:{verdict.revision}"
        print(f"{action:16}  {definition}  last used {age} ago  base {verdict.base_name}  ({verdict.reason})")
    candidates = sum(verdict.prune for verdict in verdicts)
    if args.yes:
        print(f"{pruned} derived job definition(s) deregistered")
    else:
        print(f"{candidates} derived job definition(s) would be deregistered; run again with --yes to do it")
