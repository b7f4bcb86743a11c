"""Test-wide set-up, for tests/ and devtools/tests/ alike: every test run gets its own AIRFLOW_HOME,
never the user's; hypothesis has no per-example deadline; ``--e2e-status-sources`` narrows the e2e stacks
to some ways of learning job status."""

from __future__ import annotations

import logging
import os
import tempfile

import pytest
from hypothesis import settings

_home = tempfile.mkdtemp(prefix="abe-test-airflow-home-")
os.environ["AIRFLOW_HOME"] = _home
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_home}/airflow.db")
os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", "test-secret-for-the-test-suite-only-0123456789")
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_name, None)

# The in-process local Batch serves every API call through werkzeug, which logs each request at INFO.
logging.getLogger("werkzeug").setLevel(logging.WARNING)

# Hypothesis fails an example that takes over 200 ms by default: a stall on a loaded CI machine, not a
# property of the code under test. How fast the code is belongs in benchmarks/.
settings.register_profile("no-deadline", deadline=None)
settings.load_profile("no-deadline")

STATUS_SOURCES = ("polling", "events")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--e2e-status-sources",
        default="polling,events",
        help="comma-separated job status sources (polling, events) the e2e stacks run with; "
        "constraints/matrix.txt runs an older Airflow's stacks with polling only, to save CI time",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the e2e tests whose stack takes job status from a source not asked for."""
    wanted = set(config.getoption("--e2e-status-sources").split(","))
    kept, left_out = [], []
    for item in items:
        params = item.callspec.params.values() if hasattr(item, "callspec") else ()
        sources = {value for value in params if value in STATUS_SOURCES}
        (left_out if item.get_closest_marker("e2e") and sources - wanted else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
