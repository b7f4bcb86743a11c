"""A background loop that crashes is restarted, logged and counted; its owner hears of each crash."""

from __future__ import annotations

import threading

from airflow_batch_executor import background
from airflow_batch_executor.background import SupervisedThread


class Counted:
    def __init__(self) -> None:
        self.labels: list[tuple[str, str]] = []

    def incr_labelled(self, name: str, label: str) -> None:
        self.labels.append((name, label))


def test_a_crashing_loop_is_restarted_counted_and_reported(monkeypatch, caplog):
    monkeypatch.setattr(background, "RESTART_MIN_SECONDS", 0.0)
    stopping, done = threading.Event(), threading.Event()
    runs: list[int] = []
    crashes: list[BaseException] = []

    def loop() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise TypeError("unhashable type: 'list'")
        done.set()

    metrics = Counted()
    thread = SupervisedThread("batch-status-events", loop, stopping, metrics=metrics, on_crash=crashes.append)
    thread.start()
    assert done.wait(10)
    thread.join(10)
    assert len(runs) == 3 and thread.restarts == 2 and not thread.is_alive()
    assert metrics.labels == [("background.restarted", "batch-status-events")] * 2
    assert [type(error) for error in crashes] == [TypeError, TypeError]
    assert "background thread batch-status-events crashed; restarting it" in caplog.text


def test_the_metric_names_the_kind_of_thread_not_its_number():
    stopping = threading.Event()
    metrics = Counted()

    def loop() -> None:
        stopping.set()
        raise RuntimeError("once")

    thread = SupervisedThread("batch-submit-3", loop, stopping, metrics=metrics)
    thread.start()
    thread.join(10)
    assert metrics.labels == [("background.restarted", "batch-submit")]
