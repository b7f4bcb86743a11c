"""Run every Apache Airflow task instance as an AWS Batch job.

Set ``AIRFLOW__CORE__EXECUTOR=airflow_batch_executor.AwsBatchExecutor``.
"""

from __future__ import annotations

from airflow_batch_executor.version import __version__

__all__ = ["AwsBatchExecutor", "BatchJobOverrides", "EfsVolume", "HostVolume", "__version__"]


def __getattr__(name: str):
    # Deferred so that provider discovery (which imports this package) does not import the executor
    # and, through it, the scheduler's modules.
    if name == "AwsBatchExecutor":
        from airflow_batch_executor.executor import AwsBatchExecutor

        return AwsBatchExecutor
    if name in ("BatchJobOverrides", "EfsVolume", "HostVolume"):
        from airflow_batch_executor.requests import overrides

        return getattr(overrides, name)
    raise AttributeError(name)
