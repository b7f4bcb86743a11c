"""The Airflow version matrix agrees with its pins, pyproject.toml and the docs.

``constraints/matrix.txt`` names the versions besides uv.lock's and what each runs; scripts/suite.py
(what scripts/test runs) runs them. These checks catch what would otherwise drop a version or a test
folder from the matrix without a word: a version without its pins, a leg's path that is gone, a floor
in pyproject.toml other than the lowest version tested, a README or docs/supported-versions.md
naming other versions.
"""

from __future__ import annotations

import re
import runpy
import sys
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
        ignored = [word.removeprefix("--ignore=") for word in leg.options if word.startswith("--ignore=")]
        for path in [*leg.paths, *ignored]:
            assert (ROOT / path).exists(), f"constraints/matrix.txt: {path} does not exist"
        for path in ignored:
            assert any(Path(given) in Path(path).parents for given in leg.paths), (
                f"Airflow {leg.airflow}: pytest honours --ignore only below a path it is given, not {path}"
            )


def test_the_newest_airflow_runs_in_the_main_venv_and_the_lowest_tested_is_the_floor():
    versions = sorted(Version(leg.airflow) for leg in LEGS)
    assert Version(locked_airflow()) > versions[-1]
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [airflow] = [Requirement(line) for line in dependencies if Requirement(line).name == "apache-airflow"]
    [floor] = [Version(spec.version) for spec in airflow.specifier if spec.operator == ">="]
    assert floor == versions[0]


def test_the_supported_versions_tables_name_every_version_tested():
    """Both tables: the README's (what each version supports) and docs/supported-versions.md's (what
    scripts/test runs there too)."""
    for document in ("README.md", "docs/supported-versions.md"):
        supported = (ROOT / document).read_text().split("# Supported versions", 1)[1].split("\n#", 1)[0]
        listed = re.findall(r"^\| (\d+\.\d+\.\d+) ", supported, re.MULTILINE)
        expected = [locked_airflow(), *sorted((leg.airflow for leg in LEGS), key=Version, reverse=True)]
        assert listed == expected, document


def test_test_paths_leave_the_matrix_out_and_options_do_not():
    names_tests = SUITE["names_tests"]
    assert names_tests("tests/unit") and names_tests("tests/unit/test_naming.py::test_x")
    assert not any(map(names_tests, ["-x", "-q", "no:cacheprovider", "not e2e", "tests/nope"]))


def inside(path: Path, folders: list[str]) -> bool:
    return any(path == Path(folder) or Path(folder) in path.parents for folder in folders)


def test_every_test_module_runs_in_exactly_one_main_shard():
    pytest_options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    testpaths = pytest_options["testpaths"]
    modules = sorted(
        path.relative_to(ROOT) for folder in testpaths for path in (ROOT / folder).rglob("test_*.py")
    )
    assert modules
    shards = SUITE["main_shards"]()
    for module in modules:
        running = [
            shard.name
            for shard in shards
            if inside(module, list(shard.paths) or testpaths)
            and not inside(module, [option.removeprefix("--ignore=") for option in shard.options])
        ]
        assert len(running) == 1, f"{module} runs in {running or 'no shard'}"
    for shard in shards:
        for path in shard.paths:
            assert (ROOT / path).exists(), f"scripts/suite.py MAIN_SHARDS: {path} does not exist"
        for option in (option for option in shard.options if option.startswith("--ignore=")):
            ignored = Path(option.removeprefix("--ignore="))
            assert any(Path(path) in ignored.parents for path in shard.paths), (
                f"{shard.name}: pytest honours --ignore only below a path it is given, not {ignored}"
            )


def status_sources(options: tuple[str, ...]) -> set[str]:
    for option in options:
        if option.startswith("--e2e-status-sources="):
            return set(option.removeprefix("--e2e-status-sources=").split(","))
    return {"polling", "events"}


def test_every_status_source_of_every_end_to_end_module_runs_somewhere():
    """A shard narrowed to some status sources leaves the others to a leg that runs the module (a module
    whose stacks are parametrized by status source says ``params=["polling", "events"]``)."""
    runs = [*SUITE["main_shards"](), *SUITE["leg_runs"](LEGS)]
    for shard in SUITE["main_shards"]():
        for path in shard.paths:
            if not path.startswith("tests/e2e") or '"polling", "events"' not in (ROOT / path).read_text():
                continue
            covered = set().union(
                *(status_sources(run.options) for run in runs if path in run.paths or run is shard)
            )
            assert covered == {"polling", "events"}, (
                f"{path}: no run takes status from {covered ^ {'polling', 'events'}}"
            )


def test_runs_start_longest_first_and_every_run_has_an_expected_length():
    runs = [*SUITE["main_shards"](), *SUITE["leg_runs"](LEGS)]
    assert {run.name for run in runs} == set(SUITE["EXPECTED_SECONDS"]), "update EXPECTED_SECONDS"
    expected = [SUITE["EXPECTED_SECONDS"][run.name] for run in SUITE["schedule"](runs)]
    assert expected == sorted(expected, reverse=True)


def test_end_to_end_shards_run_one_at_a_time():
    shards = {run.name: run for run in SUITE["main_shards"]()}
    e2e_1, e2e_2, core = shards["main-e2e-1"], shards["main-e2e-2"], shards["main-core"]
    assert e2e_1.stacks and e2e_2.stacks and not core.stacks and not shards["main-tools"].stacks
    pick = SUITE["pick"]
    assert pick([e2e_2, core], [e2e_1]) is core
    assert pick([e2e_2], [e2e_1]) is None
    assert pick([e2e_2, core], [core]) is e2e_2


def test_a_light_run_goes_beside_two_others_and_nothing_more():
    runs = {run.name: run for run in [*SUITE["main_shards"](), *SUITE["leg_runs"](LEGS)]}
    core, tools, e2e_2 = runs["main-core"], runs["main-tools"], runs["main-e2e-2"]
    legs = [runs["airflow-3.2.2"], runs["airflow-3.1.8"], runs["airflow-3.2.0"]]
    pick = SUITE["pick"]
    assert pick([legs[2], core], [e2e_2, legs[0]]) is core, "two heavy runs leave room for a light one"
    assert pick([legs[2]], [e2e_2, legs[0]]) is None, "never three heavy runs"
    assert pick([legs[2], tools], [e2e_2, legs[0], core]) is None, "never four runs"
    assert pick([legs[2]], [core, tools]) is legs[2], "light runs do not hold the heavy slots"
    assert pick([tools, legs[2]], [core, e2e_2]) is legs[2], "a second light run waits for the light slot"
    assert pick([tools], [core]) is None
    assert set(SUITE["LIGHT_RUNS"]) <= set(runs)


def test_the_slowest_tests_are_gathered_from_every_run(tmp_path: Path):
    logs = {"a": ["3.50s call     t.py::x", "1 passed"], "b": ["12.00s setup    u.py::y"]}
    for name, lines in logs.items():
        (tmp_path / name).write_text("\n".join(lines))
    found = SUITE["slowest"]({name: tmp_path / name for name in logs})
    assert found == ["12.00s setup    u.py::y  [b]", "3.50s call     t.py::x  [a]"]


def test_a_leg_killed_by_a_signal_fails_the_run():
    assert SUITE["exit_code"]([0, 0, 0]) == 0
    assert SUITE["exit_code"]([0, -9, 0]) == 1, "the OOM killer's SIGKILL is a failure"
    assert SUITE["exit_code"]([0, 2]) == 1


def test_a_run_is_charged_the_cpu_of_the_processes_it_started_and_a_hung_run_is_killed(tmp_path: Path):
    busy = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'sum(range(10**7))'], check=True)"
    with (tmp_path / "log").open("w") as log:
        code, cpu = SUITE["run_measured"]([sys.executable, "-c", busy], log)
        sleeps = [sys.executable, "-c", "import time; time.sleep(60)"]
        hung, _ = SUITE["run_measured"](sleeps, log, timeout=0.5)
    assert code == 0 and cpu >= 0.1, "the grandchild's sum over ten million numbers is counted"
    assert hung == 1
    assert "killed after 0.5 s" in (tmp_path / "log").read_text()
