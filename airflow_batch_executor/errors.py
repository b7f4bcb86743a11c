"""Errors that speak to the operator: what is wrong, where, and what to do about it."""

from __future__ import annotations

from airflow.exceptions import AirflowConfigException

SECTION = "aws_batch_executor"


def option_env_var(option: str, team: str | None = None) -> str:
    """The environment variable Airflow reads the option from (a team's own, in multi-team mode)."""
    team_part = f"{team.upper()}___" if team else ""
    return f"AIRFLOW__{team_part}{SECTION.upper()}__{option.upper()}"


def option_place(option: str, team: str | None = None) -> str:
    """Where an operator sets the option: the airflow.cfg section and the environment variable."""
    section = f"{team}={SECTION}" if team else SECTION
    return f"{option} in [{section}] or {option_env_var(option, team)}"


class OptionError(AirflowConfigException):
    """An ``[aws_batch_executor]`` option is unusable; raised at start-up so the scheduler stops early.

    With ``team`` (multi-team mode) the message names the team and the team's own variable, since a
    team's executor reads nothing from the global section.
    """

    def __init__(self, option: str, problem: str, fix: str, team: str | None = None) -> None:
        self.option = option
        self.problem = problem
        self.fix = fix
        self.team = team
        owner = f" of team {team!r}" if team else ""
        super().__init__(
            f"[{SECTION}] {option}{owner} {problem}. Fix: {fix} (set {option_place(option, team)})."
        )

    def for_team(self, team: str | None) -> OptionError:
        """The same error, said of the executor of ``team``."""
        return OptionError(self.option, self.problem, self.fix, team) if team else self


class TaskConfigError(ValueError):
    """One task's job request cannot be built or sent; only that task fails, with this message."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}. Fix: {fix}.")


class HealthCheckError(AirflowConfigException):
    """The start-up health check failed; the message lists every failed check with its fix."""
