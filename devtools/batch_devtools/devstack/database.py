"""The stack's metadata database: a fresh SQLite file, or a fresh PostgreSQL database per stack.

A fresh database per stack keeps stacks independent of each other and of earlier runs, so a
test never sees another test's DAG runs or scheduler jobs.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy
from sqlalchemy.engine import Engine, make_url

from batch_devtools.devstack.errors import StackError

POSTGRES_ADMIN_URL_ENV = "DEVSTACK_POSTGRES_URL"
DEFAULT_POSTGRES_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def postgres_admin_url() -> str:
    """Where fresh PostgreSQL databases are created from; override with ``DEVSTACK_POSTGRES_URL``."""
    return os.environ.get(POSTGRES_ADMIN_URL_ENV, DEFAULT_POSTGRES_ADMIN_URL)


def postgres_reachable(admin_url: str | None = None) -> str | None:
    """None when PostgreSQL answers, else why not (for a skip or error message)."""
    try:
        engine = sqlalchemy.create_engine(
            admin_url or postgres_admin_url(), poolclass=sqlalchemy.pool.NullPool
        )
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as error:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL at {admin_url or postgres_admin_url()} is unreachable: {error}"
    return None


@dataclass
class MetadataDatabase:
    """A metadata database owned by one stack: created by :func:`create_database`, dropped by ``drop``."""

    url: str
    admin_url: str | None = None

    def engine(self) -> Engine:
        """A pool-less engine, so reads never hold SQLite locks or PostgreSQL connections open."""
        return sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)

    def drop(self) -> None:
        if self.admin_url is None:
            return
        name = make_url(self.url).database
        admin = sqlalchemy.create_engine(
            self.admin_url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool
        )
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def create_database(kind: str, stack_dir: Path) -> MetadataDatabase:
    """``kind`` is ``sqlite`` or ``postgres``."""
    if kind == "sqlite":
        return MetadataDatabase(url=f"sqlite:///{stack_dir / 'airflow.db'}")
    if kind != "postgres":
        raise ValueError(f"unknown database kind {kind!r}; use 'sqlite' or 'postgres'")
    if importlib.util.find_spec("asyncpg") is None:
        raise StackError(
            "Airflow 3 on PostgreSQL also opens an asyncpg connection; install it: pip install asyncpg"
        )
    admin_url = postgres_admin_url()
    if problem := postgres_reachable(admin_url):
        raise StackError(
            f"{problem}. Start PostgreSQL or set {POSTGRES_ADMIN_URL_ENV} to a reachable server."
        )
    name = f"abe_devstack_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(
        admin_url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool
    )
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(admin_url).set(drivername="postgresql+psycopg2", database=name)
    return MetadataDatabase(url=url.render_as_string(hide_password=False), admin_url=admin_url)
