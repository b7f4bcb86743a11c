"""A stack's SQLite database starts as a copy of one migrated earlier for the same Airflow."""

from __future__ import annotations

import sqlite3
import sys
from types import SimpleNamespace

import pytest

from batch_devtools.devstack import database
from batch_devtools.devstack.database import create_database, migrated_copy_path


@pytest.fixture(autouse=True)
def own_prefix(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))


def migrate(path) -> None:
    """What ``airflow db migrate`` leaves, in miniature."""
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num TEXT)")
        connection.execute("INSERT INTO alembic_version VALUES ('head')")
    connection.close()


def versions(path) -> list[tuple]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    connection.close()
    return rows


def test_the_first_stack_migrates_and_the_next_ones_start_from_its_copy(tmp_path):
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
    first = create_database("sqlite", tmp_path / "first")
    assert not first.migrated
    migrate(tmp_path / "first" / "airflow.db")
    first.keep_migrated()

    second = create_database("sqlite", tmp_path / "second")
    assert second.migrated
    assert versions(tmp_path / "second" / "airflow.db") == [("head",)]
    assert (tmp_path / "second" / "airflow.db") != migrated_copy_path()


def test_a_stack_directory_given_again_keeps_its_database_and_is_never_kept_as_the_copy(tmp_path):
    (tmp_path / "again").mkdir()
    migrate(tmp_path / "again" / "airflow.db")
    with sqlite3.connect(tmp_path / "again" / "airflow.db") as connection:
        connection.execute("CREATE TABLE dag_run (id INTEGER)")
    connection.close()
    again = create_database("sqlite", tmp_path / "again")
    assert not again.migrated
    again.keep_migrated()
    assert not migrated_copy_path().exists()


def test_the_copy_is_named_by_the_airflow_distributions(monkeypatch):
    before = migrated_copy_path()

    provider = SimpleNamespace(metadata={"Name": "apache-airflow-providers-fab"}, version="9.9.9")
    real = database.importlib.metadata.distributions
    monkeypatch.setattr(database.importlib.metadata, "distributions", lambda: [*real(), provider])
    assert migrated_copy_path() != before
