"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def queued_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow 3.3 signs workload tokens for [scheduler] task_queued_timeout seconds."""
    monkeypatch.setenv("AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT", "600")
