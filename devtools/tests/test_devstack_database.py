"""A stack's database starts as a copy of one migrated earlier for the same Airflow: a SQLite file in
the virtualenv, or a PostgreSQL template database."""

from __future__ import annotations

import os
import sqlite3
import sys
import uuid
from types import SimpleNamespace

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

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


@pytest.fixture
def postgres(monkeypatch):
    """A template name of the test's own, so the real one is never touched; every database the test
    made is dropped after it."""
    if problem := database.postgres_reachable():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{problem}; CI must run this test, so start PostgreSQL on 127.0.0.1:5432")
        pytest.skip(problem)
    template = f"abe_devstack_test_{uuid.uuid4().hex[:12]}"
    monkeypatch.setattr(database, "migrated_template_name", lambda: template)
    made: list[database.MetadataDatabase] = []
    yield template, made
    for made_here in made:
        made_here.drop()
    database.MetadataDatabase(
        url=f"postgresql+psycopg2:///{template}", admin_url=database.postgres_admin_url()
    ).drop()


def pg_versions(db: database.MetadataDatabase) -> list[tuple]:
    engine = db.engine()
    with engine.connect() as connection:
        rows = [tuple(row) for row in connection.execute(text("SELECT version_num FROM alembic_version"))]
    engine.dispose()
    return rows


def test_the_first_postgres_stack_migrates_and_the_next_ones_start_from_its_template(tmp_path, postgres):
    template, made = postgres
    first = create_database("postgres", tmp_path)
    made.append(first)
    assert not first.migrated and first.empty
    engine = first.engine()
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num TEXT)"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('head')"))
    engine.dispose()
    first.keep_migrated()

    second = create_database("postgres", tmp_path)
    made.append(second)
    assert second.migrated and not second.empty
    assert pg_versions(second) == [("head",)]
    assert make_url(second.url).database not in (template, make_url(first.url).database)

    third = create_database("postgres", tmp_path)
    made.append(third)
    third.keep_migrated()  # a copy is never kept again
    assert third.migrated and pg_versions(third) == [("head",)]
