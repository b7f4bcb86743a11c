"""A stack that names its DAG files parses only those: its DAGs folder holds links to them alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_devtools.devstack import DevStack, StackError


@pytest.fixture
def dags(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    (folder / "nested").mkdir(parents=True)
    for name in ("scenario_a.py", "scenario_b.py", "alerts.py", "other.py", "nested/scenario_c.py"):
        (folder / name).write_text("# a DAG file\n")
    return folder


def test_only_the_named_files_are_linked_into_the_stacks_dags_folder(dags: Path, tmp_path: Path):
    stack = DevStack(
        dags, dag_files=["scenario_*.py", "alerts.py", "scenario_a.py"], stack_dir=tmp_path / "s"
    )

    stack._airflow_dags_folder()
    linked = stack._airflow_dags_folder()  # a stack_dir given again

    assert sorted(path.name for path in linked.iterdir()) == ["alerts.py", "scenario_a.py", "scenario_b.py"]
    assert (linked / "alerts.py").resolve() == dags / "alerts.py"


def test_a_pattern_that_matches_no_file_is_refused_with_the_folder_named(dags: Path):
    with pytest.raises(StackError, match=r"no file of .*dags matches 'scenario_typo\.py'"):
        DevStack(dags, dag_files=["scenario_a.py", "scenario_typo.py"])


def test_without_dag_files_the_stack_uses_the_folder_itself(dags: Path, tmp_path: Path):
    assert DevStack(dags, stack_dir=tmp_path / "stack")._airflow_dags_folder() == dags
