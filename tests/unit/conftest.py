"""Fixtures shared by the unit tests; the helpers they share are in helpers.py."""

from __future__ import annotations

import pytest

from airflow_batch_executor import metrics

from .helpers import Recorder


@pytest.fixture
def queued_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow 3.3 signs workload tokens for [scheduler] task_queued_timeout seconds."""
    monkeypatch.setenv("AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT", "600")


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Every metric emitted during the test, in order."""
    rec = Recorder()
    monkeypatch.setattr(metrics, "Stats", rec)
    return rec
