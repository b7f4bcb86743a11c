"""The stack's metadata database: a fresh SQLite file, or a fresh PostgreSQL database per stack.

A fresh database per stack keeps stacks independent of each other and of earlier runs, so a
test never sees another test's DAG runs or scheduler jobs. A fresh database starts as a copy of one
that ``airflow db migrate`` made earlier for the same Airflow: a migration costs about 10
CPU-seconds, and what it writes depends only on Airflow's code. For SQLite the copy is a file in the
virtualenv (:func:`migrated_copy_path`); for PostgreSQL a template database on the server
(:func:`migrated_template_name`), which ``CREATE DATABASE ... TEMPLATE`` copies in a fraction of a
second.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy
from sqlalchemy.engine import Connection, Engine, make_url

from batch_devtools.devstack.errors import StackError

POSTGRES_ADMIN_URL_ENV = "DEVSTACK_POSTGRES_URL"
DEFAULT_POSTGRES_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def postgres_admin_url() -> str:
    """Where fresh PostgreSQL databases are created from; override with ``DEVSTACK_POSTGRES_URL``."""
    return os.environ.get(POSTGRES_ADMIN_URL_ENV, DEFAULT_POSTGRES_ADMIN_URL)


@contextmanager
def admin_connection(admin_url: str) -> Iterator[Connection]:
    """A connection to the admin database outside any transaction, as CREATE/DROP DATABASE need."""
    admin = sqlalchemy.create_engine(
        admin_url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool
    )
    try:
        with admin.connect() as connection:
            yield connection
    finally:
        admin.dispose()


def postgres_reachable(admin_url: str | None = None) -> str | None:
    """None when PostgreSQL answers, else why not (for a skip or error message)."""
    try:
        with admin_connection(admin_url or postgres_admin_url()) as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL at {admin_url or postgres_admin_url()} is unreachable: {error}"
    return None


@dataclass
class MetadataDatabase:
    """A metadata database owned by one stack: created by :func:`create_database`, dropped by ``drop``."""

    url: str
    admin_url: str | None = None
    migrated: bool = False
    """Whether it already holds Airflow's tables (copied from a migrated one): no migration needed."""
    empty: bool = False
    """Whether it was created empty here: once migrated, it holds Airflow's tables and nothing else."""

    def engine(self) -> Engine:
        """A pool-less engine, so reads never hold SQLite locks or PostgreSQL connections open."""
        return sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)

    def drop(self) -> None:
        if self.admin_url is None:
            return
        name = make_url(self.url).database
        with admin_connection(self.admin_url) as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def keep_migrated(self) -> None:
        """Keep a copy of this just-migrated database for the next stacks of the same Airflow.

        Written under a unique name, then renamed: stacks of other runs may copy it at any moment.
        """
        url = make_url(self.url)
        if not self.empty:
            return
        if url.get_backend_name() == "postgresql":
            self._keep_as_template(str(url.database))
            return
        kept = migrated_copy_path()
        kept.parent.mkdir(parents=True, exist_ok=True)
        partial = kept.with_name(f"{kept.name}.{uuid.uuid4().hex}.partial")
        shutil.copyfile(str(url.database), partial)
        os.replace(partial, kept)

    def _keep_as_template(self, name: str) -> None:
        """Copy the database to the template name; a template another stack kept first stays."""
        assert self.admin_url is not None
        template = migrated_template_name()
        partial = f"{template}_{uuid.uuid4().hex[:8]}"
        with admin_connection(self.admin_url) as connection:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{partial}" TEMPLATE "{name}"'))
            try:
                connection.execute(sqlalchemy.text(f'ALTER DATABASE "{partial}" RENAME TO "{template}"'))
            except sqlalchemy.exc.DBAPIError:
                connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{partial}"'))


def airflow_digest() -> str:
    """A hash of every installed Airflow distribution and its version: what a migration writes
    depends on them alone (a provider may add tables), so a changed pin never meets an old copy."""
    airflow = sorted(
        f"{dist.metadata['Name']}=={dist.version}"
        for dist in importlib.metadata.distributions()
        if (dist.metadata["Name"] or "").lower().startswith("apache-airflow")
    )
    return hashlib.sha256("\n".join(airflow).encode()).hexdigest()[:16]


def migrated_copy_path() -> Path:
    """Where this interpreter keeps a migrated SQLite database, named by its Airflow distributions;
    inside the virtualenv, so it goes with it."""
    return Path(sys.prefix) / "devstack-migrated" / f"airflow-{airflow_digest()}.sqlite"


def migrated_template_name() -> str:
    """The PostgreSQL database kept migrated for fresh ones, named by the Airflow distributions."""
    return f"abe_devstack_migrated_{airflow_digest()}"


def _create_postgres(connection: Connection, name: str) -> bool:
    """Create the database, as a copy of the migrated template when there is one; True when it is.

    A template that cannot be copied (another session is connected to it, which only a stack keeping
    it briefly is) leaves the new database empty, to be migrated.
    """
    template = migrated_template_name()
    exists = connection.execute(
        sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": template}
    ).first()
    if exists:
        try:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
            return True
        except sqlalchemy.exc.DBAPIError:
            pass
    connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    return False


def create_database(kind: str, stack_dir: Path) -> MetadataDatabase:
    """``kind`` is ``sqlite`` or ``postgres``."""
    if kind == "sqlite":
        path = stack_dir / "airflow.db"
        if path.exists():  # a stack directory given again: its database as it was left
            return MetadataDatabase(url=f"sqlite:///{path}")
        kept = migrated_copy_path()
        if kept.exists():
            shutil.copyfile(kept, path)
            return MetadataDatabase(url=f"sqlite:///{path}", migrated=True)
        return MetadataDatabase(url=f"sqlite:///{path}", empty=True)
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
    with admin_connection(admin_url) as connection:
        migrated = _create_postgres(connection, name)
    url = make_url(admin_url).set(drivername="postgresql+psycopg2", database=name)
    return MetadataDatabase(
        url=url.render_as_string(hide_password=False),
        admin_url=admin_url,
        migrated=migrated,
        empty=not migrated,
    )
