"""Where Airflow versions differ, as the executor sees it."""

from __future__ import annotations


def test_scheduler_event_keys_are_uuids_only_where_airflow_keys_callbacks_by_a_string():
    import uuid

    from airflow.models.taskinstancekey import TaskInstanceKey

    from airflow_batch_executor.airflow_compat import scheduler_event_key

    callback_id = "9b2e7c5e-6a1f-4a59-9d3e-0f4f0d1d2c3b"
    assert scheduler_event_key(callback_id) == uuid.UUID(callback_id), "Airflow 3.2's string keys"
    task = TaskInstanceKey("dag", "task", "run", 1, -1)
    assert scheduler_event_key(task) is task
