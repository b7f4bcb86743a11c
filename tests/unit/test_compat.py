"""Where Airflow versions differ, as the executor sees it; and where a job finds the execution API."""

from __future__ import annotations

from airflow_batch_executor.airflow_side.compat import execution_api_url


def test_scheduler_event_keys_are_uuids_only_where_airflow_keys_callbacks_by_a_string():
    import uuid

    from airflow.models.taskinstancekey import TaskInstanceKey

    from airflow_batch_executor.airflow_side.compat import scheduler_event_key

    callback_id = "9b2e7c5e-6a1f-4a59-9d3e-0f4f0d1d2c3b"
    assert scheduler_event_key(callback_id) == uuid.UUID(callback_id), "Airflow 3.2's string keys"
    task = TaskInstanceKey("dag", "task", "run", 1, -1)
    assert scheduler_event_key(task) is task


def test_execution_api_url_from_core_or_derived_from_the_api_base_url():
    class Conf:
        def __init__(self, **values):
            self.values = values

        def get(self, section, key, fallback=None):
            return self.values.get(f"{section}.{key}", fallback)

    assert (
        execution_api_url(Conf(**{"core.execution_api_server_url": "https://af/execution/"}))
        == "https://af/execution/"
    )
    assert (
        execution_api_url(Conf(**{"api.base_url": "https://airflow.example.com/"}))
        == "https://airflow.example.com/execution/"
    )
    assert execution_api_url(Conf()) == "http://localhost:8080/execution/"


def test_a_team_without_its_own_execution_api_url_uses_the_deployments(monkeypatch):
    from airflow.executors.base_executor import ExecutorConf

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "https://airflow.internal/execution/")
    assert execution_api_url(ExecutorConf("team_a")) == "https://airflow.internal/execution/"
    monkeypatch.setenv("AIRFLOW__TEAM_A___API__BASE_URL", "https://team-a.internal/")
    assert execution_api_url(ExecutorConf("team_a")) == "https://team-a.internal/execution/"
    monkeypatch.setenv("AIRFLOW__TEAM_A___CORE__EXECUTION_API_SERVER_URL", "https://a.internal/execution/")
    assert execution_api_url(ExecutorConf("team_a")) == "https://a.internal/execution/"
    assert execution_api_url(ExecutorConf()) == "https://airflow.internal/execution/"


def test_the_startup_heap_is_frozen_once_per_process(monkeypatch):
    import gc

    from airflow_batch_executor.airflow_side import adapter

    calls: list[str] = []
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append("collect"))
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    adapter.freeze_startup_heap.cache_clear()
    adapter.freeze_startup_heap()
    adapter.freeze_startup_heap()
    assert calls == ["freeze"]
