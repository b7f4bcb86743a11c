from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from batch_devtools.local_batch import LocalBatch


@pytest.fixture(scope="module")
def local_batch() -> Iterator[LocalBatch]:
    with LocalBatch(
        port=0, step_delay=0.05, time_scale=0.02, log_flush_interval=0.1, kill_grace_seconds=1.0
    ) as lb:
        yield lb


@pytest.fixture(autouse=True)
def _healthy_batch(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts without faults and with the module's timing settings."""
    if "local_batch" not in request.fixturenames:
        yield
        return
    lb: LocalBatch = request.getfixturevalue("local_batch")
    saved = dataclasses.replace(lb.settings)
    lb.faults.clear()
    yield
    lb.faults.clear()
    for field in dataclasses.fields(saved):
        setattr(lb.settings, field.name, getattr(saved, field.name))


@pytest.fixture(scope="module")
def batch(local_batch: LocalBatch) -> Any:
    return local_batch.client("batch")


@pytest.fixture(scope="module")
def logs(local_batch: LocalBatch) -> Any:
    return local_batch.client("logs")
