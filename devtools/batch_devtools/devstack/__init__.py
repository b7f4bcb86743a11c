"""A dev stack: the local Batch plus a real Airflow 3 that runs every task as a Batch job.

Used by the end-to-end tests and by ``python -m batch_devtools.devstack demo``.
"""

from batch_devtools.devstack.errors import StackError
from batch_devtools.devstack.metadata import CallbackRow, TaskEvent, TaskInstanceRow
from batch_devtools.devstack.settings import Timing
from batch_devtools.devstack.stack import DevStack

__all__ = ["CallbackRow", "DevStack", "StackError", "TaskEvent", "TaskInstanceRow", "Timing"]
