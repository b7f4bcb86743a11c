"""The provider's registration with Airflow."""

from __future__ import annotations

import pytest

from airflow_batch_executor.provider_info import get_provider_info


@pytest.mark.parametrize(
    "airflow_version, registers_section",
    [("3.1.8", False), ("3.2.0", True), ("3.3.2", True), ("3.4.0.dev0", True)],
)
def test_the_section_is_registered_where_airflow_accepts_a_shared_section(
    monkeypatch, airflow_version, registers_section
):
    import airflow

    monkeypatch.setattr(airflow, "__version__", airflow_version)
    info = get_provider_info()
    assert ("config" in info) is registers_section
    assert info["executors"] == ["airflow_batch_executor.AwsBatchExecutor"]
