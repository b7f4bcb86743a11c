"""Registers the package as an Airflow provider so ``airflow config list`` documents our options."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml
from packaging.version import Version

from airflow_batch_executor.version import __version__

PACKAGE_NAME = "airflow-batch-executor"
SHARED_SECTIONS_SINCE = Version("3.2")


def load_config_description() -> dict[str, Any]:
    """Read the shipped ``config_templates/config.yml`` (the one source for option docs and defaults)."""
    text = resources.files("airflow_batch_executor").joinpath("config_templates/config.yml").read_text()
    return yaml.safe_load(text)


def _airflow_accepts_a_shared_section() -> bool:
    """Airflow 3.1 refuses to start when two providers describe one config section.

    The amazon provider describes ``[aws_batch_executor]`` too, so on 3.1 the section is left to it
    (the options are read the same either way, with our defaults as fallbacks).
    """
    from airflow import __version__ as airflow_version

    return Version(Version(airflow_version).base_version) >= SHARED_SECTIONS_SINCE


def get_provider_info() -> dict[str, Any]:
    """Entry point ``apache_airflow_provider``: the runtime provider description Airflow validates."""
    info: dict[str, Any] = {
        "package-name": PACKAGE_NAME,
        "name": "AWS Batch executor",
        "description": "Runs every Airflow task instance as an AWS Batch job.",
        "versions": [__version__],
        "executors": ["airflow_batch_executor.AwsBatchExecutor"],
        "cli": ["airflow_batch_executor.cli.definition.get_cli_commands"],
    }
    if _airflow_accepts_a_shared_section():
        info["config"] = load_config_description()
    return info
