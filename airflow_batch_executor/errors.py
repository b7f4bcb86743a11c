"""Errors that speak to the operator: what is wrong, where, and what to do about it."""

from __future__ import annotations

from airflow.exceptions import AirflowConfigException


class OptionError(AirflowConfigException):
    """An ``[aws_batch_executor]`` option is unusable; raised at start-up so the scheduler stops early."""

    def __init__(self, option: str, problem: str, fix: str) -> None:
        self.option = option
        super().__init__(f"[aws_batch_executor] {option} {problem}. Fix: {fix}.")


class TaskConfigError(ValueError):
    """One task's job request cannot be built or sent; only that task fails, with this message."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}. Fix: {fix}.")


class HealthCheckError(AirflowConfigException):
    """The start-up health check failed; the message lists every failed check with its fix."""
