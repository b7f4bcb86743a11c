"""Registers the package as an Airflow provider so ``airflow config list`` documents our options."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from airflow_batch_executor.airflow_side.compat import accepts_shared_config_section
from airflow_batch_executor.version import __version__

PACKAGE_NAME = "airflow-batch-executor"


def load_config_description() -> dict[str, Any]:
    """Read the shipped ``config_templates/config.yml`` (the one source for option docs and defaults)."""
    text = resources.files("airflow_batch_executor").joinpath("config_templates/config.yml").read_text()
    return yaml.safe_load(text)


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
    if accepts_shared_config_section():
        info["config"] = load_config_description()
    return info
