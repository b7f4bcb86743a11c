"""The Airflow version matrix agrees with its pins, pyproject.toml and the README.

``constraints/matrix.txt`` names the versions besides uv.lock's and what each runs; scripts/suite.py
(what scripts/test runs) runs them. These checks catch what would otherwise drop a version or a test
folder from the matrix without a word: a version without its pins, a leg's path that is gone, a floor
in pyproject.toml other than the lowest version tested, a README naming other versions.
"""

from __future__ import annotations

import re
import runpy
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
SUITE = runpy.run_path(str(ROOT / "scripts" / "suite.py"))
LEGS = SUITE["read_matrix"]((ROOT / "constraints" / "matrix.txt").read_text())


def pins(constraints: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", constraints.read_text(), re.MULTILINE))


def locked_airflow() -> str:
    lock = (ROOT / "uv.lock").read_text()
    return re.search(r'^name = "apache-airflow"\nversion = "([^"]+)"', lock, re.MULTILINE)[1]


def test_every_leg_has_its_pins_with_an_amazon_provider_and_no_other_pins_are_kept():
    assert LEGS, "constraints/matrix.txt lists no version"
    for leg in LEGS:
        assert leg.constraints.exists(), f"{leg.constraints.name} is missing: run scripts/lock --no-upgrade"
        pinned = pins(leg.constraints)
        assert pinned["apache-airflow"] == leg.airflow
        assert "apache-airflow-providers-amazon" in pinned
    kept = {path.name for path in (ROOT / "constraints").glob("airflow-*.txt")}
    assert kept == {leg.constraints.name for leg in LEGS}
    extras = {path.stem for path in (ROOT / "constraints").glob("airflow-*.in")}
    assert extras <= {leg.constraints.stem for leg in LEGS}


def test_every_path_a_leg_runs_exists():
    for leg in LEGS:
        assert leg.paths, f"Airflow {leg.airflow} runs no tests"
        for path in leg.paths:
            assert (ROOT / path).exists(), f"constraints/matrix.txt: {path} does not exist"


def test_the_newest_airflow_runs_in_the_main_venv_and_the_lowest_tested_is_the_floor():
    versions = sorted(Version(leg.airflow) for leg in LEGS)
    assert Version(locked_airflow()) > versions[-1]
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [airflow] = [Requirement(line) for line in dependencies if Requirement(line).name == "apache-airflow"]
    [floor] = [Version(spec.version) for spec in airflow.specifier if spec.operator == ">="]
    assert floor == versions[0]


def test_the_readme_table_names_every_version_tested():
    supported = (ROOT / "README.md").read_text().split("## Supported versions", 1)[1].split("\n#", 1)[0]
    listed = re.findall(r"^\| (\d+\.\d+\.\d+) ", supported, re.MULTILINE)
    assert listed == [locked_airflow(), *sorted((leg.airflow for leg in LEGS), key=Version, reverse=True)]


def test_test_paths_leave_the_matrix_out_and_options_do_not():
    names_tests = SUITE["names_tests"]
    assert names_tests("tests/unit") and names_tests("tests/unit/test_naming.py::test_x")
    assert not any(map(names_tests, ["-x", "-q", "no:cacheprovider", "not e2e", "tests/nope"]))
