"""How an AWS client is made for one executor: through the amazon provider's ``AwsBaseHook``, so
Airflow connections, role assumption and region resolution work as everywhere else in Airflow.

A team's executor (multi-team mode) looks its connection up as the team does: the team's own
connection of that id first (``AIRFLOW_CONN__<TEAM>___<ID>``, or one owned by the team in the
metadata database), else the deployment's. Without this, the hook would look it up outside any
team, miss a team-owned connection, and fall back to boto3's default credentials: the team's jobs
would be submitted as the scheduler's own identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.config import Config

from airflow_batch_executor.airflow_side.adapter import team_connection


def aws_clients(
    conn_id: str,
    region_name: str | None,
    wanted: Mapping[str, tuple[str, Config]],
    team: str | None = None,
) -> dict[str, Any]:
    """boto3 clients (name: (service, config)) with the credentials and region of ``conn_id`` (of ``team``).

    They share one session: the connection is read and a role assumed once per build, not once per
    client, and botocore parses each service's model once. Five clients cost 0.2 s of CPU this way,
    0.57 s with a session each; every executor start and every credentials rebuild pays it.
    """
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    class SharedSessionHook(AwsBaseHook):
        shared_session: Any = None

        def get_connection(self, conn_id: str) -> Any:  # type: ignore[override]
            return team_connection(conn_id, team) if team else super().get_connection(conn_id)

        def get_session(self, region_name: str | None = None, deferrable: bool = False) -> Any:
            if self.shared_session is None:
                self.shared_session = super().get_session(region_name=region_name, deferrable=deferrable)
            return self.shared_session

    hook = SharedSessionHook(aws_conn_id=conn_id, region_name=region_name)
    clients = {}
    for name, (service, config) in wanted.items():
        hook.client_type = service
        clients[name] = hook.get_client_type(region_name=hook.region_name, config=config)
    return clients


def aws_client(
    conn_id: str, region_name: str | None, service: str, config: Config, team: str | None = None
) -> Any:
    """One boto3 client for ``service``, as :func:`aws_clients` makes them."""
    return aws_clients(conn_id, region_name, {service: (service, config)}, team)[service]
