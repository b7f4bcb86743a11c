"""``python -m batch_devtools.soak`` (``scripts/soak``): run one seeded fault soak and report it.

Airflow's environment is set up before Airflow is imported, so the imports of everything that pulls
Airflow in come after it.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from types import SimpleNamespace

from batch_devtools.soak.environment import prepare_airflow_home
from batch_devtools.soak.options import SoakOptions, parse
from batch_devtools.soak.plan import make_plan

NO_REFRESH_NOTE = (
    "this Airflow cannot sign workload tokens (Airflow 3.1), so the executor refreshes none: "
    "token refreshes are skipped"
)


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    print(f"Soak seed {options.seed} (rerun with --seed {options.seed})", flush=True)
    home = prepare_airflow_home()
    try:
        return _soak(options)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _soak(options: SoakOptions) -> int:
    plan = make_plan(options)
    print(f"Plan: {options.tasks} tasks, status from {plan.status}, planned: {plan.planned()}", flush=True)

    from airflow_batch_executor.airflow_side import compat
    from batch_devtools.soak.invariants import check
    from batch_devtools.soak.log_capture import capture_executor_logs
    from batch_devtools.soak.report import build, text, without_tokens
    from batch_devtools.soak.run import SoakRun

    logs = capture_executor_logs()
    started = time.monotonic()
    run = SoakRun(options, plan, logs)
    gathered = run.run()
    wall = time.monotonic() - started
    violations, lifecycle = check(gathered.evidence)
    signs = compat.token_generator(SimpleNamespace(jwt_generator=object())) is not None
    report = build(options, plan, gathered, violations, lifecycle, wall, None if signs else NO_REFRESH_NOTE)
    print(text(report, run.record.started_at), flush=True)
    if options.executor_log:
        with open(options.executor_log, "w", encoding="utf-8") as out:
            out.write(logs.text())
    if options.json_path:
        with open(options.json_path, "w", encoding="utf-8") as out:
            json.dump(without_tokens(report), out, indent=2, default=str)
    return 0 if not violations else 1


if __name__ == "__main__":
    sys.exit(main())
