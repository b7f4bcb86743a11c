"""A dev stack: the local Batch plus a real Airflow 3 that runs every task as a Batch job.

Used by the end-to-end tests and by ``python -m airflow_batch_executor.devstack demo``.
"""

from airflow_batch_executor.devstack.errors import StackError
from airflow_batch_executor.devstack.metadata import TaskEvent, TaskInstanceRow
from airflow_batch_executor.devstack.settings import Timing
from airflow_batch_executor.devstack.stack import DevStack

__all__ = ["DevStack", "StackError", "TaskEvent", "TaskInstanceRow", "Timing"]
