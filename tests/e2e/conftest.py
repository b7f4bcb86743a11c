"""End-to-end fixtures: real Airflow 3 components and the local Batch, as subprocesses.

When a test fails, the tail of every component's log is attached to its report, because the
cause of an e2e failure is almost always in a scheduler or job log, not in the assertion.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from batch_devtools.devstack import DevStack


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    for value in funcargs.values():
        stack = getattr(value, "stack", value)
        if isinstance(stack, DevStack) and stack.stack_dir.exists():
            report.sections.append(("dev stack logs", stack.log_tails()))
            return
