"""How an AWS client is made for one executor: through the amazon provider's ``AwsBaseHook``, so
Airflow connections, role assumption and region resolution work as everywhere else in Airflow.

A team's executor (multi-team mode) looks its connection up as the team does: the team's own
connection of that id first (``AIRFLOW_CONN__<TEAM>___<ID>``, or one owned by the team in the
metadata database), else the deployment's. Without this, the hook would look it up outside any
team, miss a team-owned connection, and fall back to boto3's default credentials: the team's jobs
would be submitted as the scheduler's own identity.
"""

from __future__ import annotations

from typing import Any

from botocore.config import Config

from airflow_batch_executor.airflow_compat import team_connection


def aws_client(
    conn_id: str, region_name: str | None, service: str, config: Config, team: str | None = None
) -> Any:
    """A boto3 client for ``service`` with the credentials and region of ``conn_id`` (of ``team``)."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    class TeamAwsHook(AwsBaseHook):
        def get_connection(self, conn_id: str) -> Any:  # type: ignore[override]
            return team_connection(conn_id, team) if team else super().get_connection(conn_id)

    hook = TeamAwsHook(aws_conn_id=conn_id, region_name=region_name, client_type=service)
    return hook.get_client_type(region_name=hook.region_name, config=config)
