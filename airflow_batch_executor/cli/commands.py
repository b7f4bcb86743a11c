"""Bodies of ``airflow aws-batch-executor check | jobs | render``.

They reuse the executor's own pieces (options, health checks, request building, placement), so what
they print is what the scheduler does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from airflow_batch_executor.adoption import jobs_by_id
from airflow_batch_executor.errors import OptionError, TaskConfigError
from airflow_batch_executor.gateway import BatchGateway
from airflow_batch_executor.health import run_health_checks
from airflow_batch_executor.naming import WorkloadIdentity
from airflow_batch_executor.options import SECTION, ExecutorOptions, execution_api_url, load_options
from airflow_batch_executor.provider_info import load_config_description
from airflow_batch_executor.placement import PlacementCatalog, place
from airflow_batch_executor.request import JobSpec, base_request, build_submit_request
from airflow_batch_executor.workloads import EXECUTE_WORKLOAD_MODULE

BATCH_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
WORKLOAD_PLACEHOLDER = "<the task's ExecuteTask workload as JSON, built by the scheduler; token redacted>"


def _options() -> ExecutorOptions:
    from airflow.configuration import conf

    try:
        return load_options(conf)
    except OptionError as error:
        print(f"[FAILED] configuration: {error}")
        raise SystemExit(1) from None


def check(args: argparse.Namespace) -> None:
    """Exit 1 when any check fails, so the command can gate a deployment."""
    options = _options()
    try:
        base = base_request(options)
    except OptionError as error:
        print(f"[FAILED] configuration: {error}")
        raise SystemExit(1) from None
    print("[ok] configuration: every [aws_batch_executor] option is valid")
    gateway = BatchGateway(options.conn_id, options.region_name)
    checks = run_health_checks(gateway, options.job_queue, options.job_definition, base)
    for item in checks:
        print(item)
    if not all(item.ok for item in checks):
        raise SystemExit(1)


def options(args: argparse.Namespace) -> None:
    """Every option of this executor, including those ``airflow config list`` cannot show.

    The amazon provider registers a section of the same name, and Airflow keeps one provider's
    description per section, so ``airflow config list`` shows only the options both executors share.
    """
    from airflow.configuration import conf

    for name, spec in load_config_description()[SECTION]["options"].items():
        value = conf.get(SECTION, name, fallback=None)
        default = spec.get("default")
        print(f"{name} ({spec['type']}, default: {default if default not in (None, '') else 'not set'})")
        for line in spec["description"].strip().splitlines():
            print(f"    {line}")
        print(f"    Current value: {value if value not in (None, '') else 'not set'}")
        print(f"    Environment variable: AIRFLOW__{SECTION.upper()}__{name.upper()}")
        print()


def _age(created_ms: int | None, now: float) -> str:
    if not created_ms:
        return "?"
    seconds = max(0, int(now - created_ms / 1000))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def deployment_jobs(
    gateway: BatchGateway, job_queue: str, prefix: str | None, state: str | None, dag_id: str | None, limit: int
) -> list[dict[str, Any]]:
    """Jobs of this deployment in a queue: Airflow-tagged, optionally by name prefix, newest first."""
    if prefix:
        summaries = gateway.list_jobs(job_queue, name_pattern=f"{prefix}*")
        summaries = [job for job in summaries if not state or job.get("status") == state]
    else:
        summaries = [job for status in ([state] if state else BATCH_STATUSES) for job in gateway.list_jobs(job_queue, status=status)]
    summaries.sort(key=lambda job: job.get("createdAt", 0), reverse=True)
    described = jobs_by_id(gateway, [job["jobId"] for job in summaries])
    jobs = []
    for summary in summaries:
        job = described.get(summary["jobId"])
        tags = (job or {}).get("tags") or {}
        if "airflow.dag_id" not in tags or (dag_id and tags["airflow.dag_id"] != dag_id):
            continue
        jobs.append(job)
        if len(jobs) >= limit:
            break
    return jobs


def jobs(args: argparse.Namespace) -> None:
    options = _options()
    gateway = BatchGateway(options.conn_id, options.region_name)
    queue = args.job_queue or options.job_queue
    found = deployment_jobs(gateway, queue, options.job_name, args.state, args.dag_id, args.limit)
    now = time.time()
    header = ("JOB ID", "STATUS", "AGE", "DAG", "TASK", "MAP", "TRY", "RUN", "REASON")
    rows = [header]
    for job in found:
        tags = job.get("tags") or {}
        rows.append(
            (
                job["jobId"],
                job.get("status", ""),
                _age(job.get("createdAt"), now),
                tags.get("airflow.dag_id", ""),
                tags.get("airflow.task_id", tags.get("airflow.callback_id", "")),
                tags.get("airflow.map_index", ""),
                tags.get("airflow.try_number", ""),
                tags.get("airflow.run_id", ""),
                job.get("statusReason", "") or (job.get("container") or {}).get("reason", ""),
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + "  " + str(row[-1]))
    print(f"{len(found)} job(s) in {queue}")


def _task(dag_id: str, task_id: str) -> Any:
    from airflow.models.serialized_dag import SerializedDagModel

    dag = SerializedDagModel.get_dag(dag_id)
    if dag is None:
        print(f"DAG {dag_id!r} is not in the metadata database; check its id and that the dag-processor parsed it")
        raise SystemExit(1)
    if task_id not in dag.task_ids:
        print(f"DAG {dag_id!r} has no task {task_id!r}; its tasks are: {', '.join(sorted(dag.task_ids))}")
        raise SystemExit(1)
    return dag.get_task(task_id)


def render(args: argparse.Namespace) -> None:
    """The request after every step the executor applies, so config precedence can be debugged."""
    from airflow.configuration import conf

    options = _options()
    task = _task(args.dag_id, args.task_id)
    timeout = task.execution_timeout.total_seconds() if task.execution_timeout else None
    spec = JobSpec(
        identity=WorkloadIdentity(args.dag_id, args.task_id, args.run_id, args.map_index, args.try_number),
        command=["python", "-m", EXECUTE_WORKLOAD_MODULE, "--json-string", WORKLOAD_PLACEHOLDER],
        airflow_queue=task.queue,
        executor_config=task.executor_config,
        execution_timeout=timeout,
    )
    try:
        request = build_submit_request(
            base_request(options),
            spec,
            job_name_prefix=options.job_name,
            api_url=execution_api_url(conf),
            default_queue=conf.get("operators", "default_queue", fallback="default"),
        )
        if not args.offline:
            gateway = BatchGateway(options.conn_id, options.region_name)
            placement = PlacementCatalog(gateway).placement(request["jobQueue"], request["jobDefinition"])
            request = place(request, placement, priority_weight=task.priority_weight, share_identifier=options.share_identifier)
    except (TaskConfigError, OptionError) as error:
        print(f"The executor would not submit {args.dag_id}.{args.task_id}: {error}")
        raise SystemExit(1) from None
    json.dump(request, sys.stdout, indent=2)
    print()
