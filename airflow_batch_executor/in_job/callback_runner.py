"""Inside a job: run one executor callback (a deadline alert's ``SyncCallback``) and exit with its
outcome.

``python -m airflow_batch_executor.in_job.callback_runner --json-string WORKLOAD`` (or ``--json-path FILE``)
is the command of a callback's job, on every Airflow version that hands callbacks to executors: the
Task SDK's own entry point refuses anything but a task in Airflow 3.2. The job exits 1 when the
callback failed, with one line naming it on stderr (the callback's own traceback is in the job's log
above it); the executor then reports the callback as failed, and the scheduler stores the reason as
the callback's output.
"""

from __future__ import annotations

import argparse
import logging
import sys

from airflow_batch_executor.airflow_side.compat import run_callback

EXIT_CALLBACK_FAILED = 1

log = logging.getLogger("airflow_batch_executor.in_job.callback_runner")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one Airflow executor callback workload.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--json-string", help="the ExecuteCallback workload as JSON")
    source.add_argument("--json-path", help="a file holding the ExecuteCallback workload as JSON")
    args = parser.parse_args(argv)
    if args.json_path:
        with open(args.json_path, encoding="utf-8") as file:
            text = file.read()
    else:
        text = args.json_string
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(message)s")
    from airflow.executors.workloads import ExecuteCallback

    workload = ExecuteCallback.model_validate_json(text)
    log.info("Running callback %s (%s)", workload.callback.id, workload.callback.data.get("path"))
    succeeded, error = run_callback(workload)
    if succeeded:
        log.info("Callback %s succeeded", workload.callback.id)
        return 0
    print(
        f"airflow-batch-executor callback {workload.callback.id} failed: {error}", file=sys.stderr, flush=True
    )
    return EXIT_CALLBACK_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
