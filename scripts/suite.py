#!/usr/bin/env python3
"""The test suite on every supported Airflow version (what ``scripts/test`` runs; stdlib only).

``scripts/test`` (no test paths)
    runs the whole suite with uv.lock's Airflow in ``.venv``, split into *shards* (``MAIN_SHARDS``:
    the end-to-end modules in two groups of about the same length, the devtools and benchmark tests,
    and the rest), and one *leg* per version of ``constraints/matrix.txt``: that version's test
    paths, in a virtualenv installed from ``constraints/airflow-<version>.txt``. Shards and legs are
    independent runs of pytest, the longest first: ``SLOTS`` at a time, each keeping about one core
    busy, and beside them one of the ``LIGHT_RUNS``, which mostly wait. Each writes
    ``.matrix/logs/<run>.log``; a line is printed as each run ends, then a summary, the slowest tests
    of all runs, and the end of every failed run's log. The exit code is non-zero when any run failed.
``scripts/test PATH... [OPTION...]``
    runs pytest on those paths in ``.venv`` only: an argument naming an existing file or folder (or
    ``file::test``) selects tests, so shards and legs are left out. Options alone (``-q``, ``-k``,
    ``-x``) go to every run.
``scripts/test --airflow VERSION [PATH...] [OPTION...]``
    runs one leg in the foreground: the given paths, else the leg's own.

Virtualenvs are kept under ``.matrix/venvs/`` (gitignored), named by the version and a hash of what
goes into them (the constraints, both pyproject.toml files, the interpreter), so a repeated run
installs nothing and a changed pin installs afresh; a fresh clone builds its own. The executor and
its devtools are installed editable, so a kept virtualenv always tests the working tree.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MATRIX = ROOT / "constraints" / "matrix.txt"
WORK = ROOT / ".matrix"
SLOTS = 2
"""Runs at once on a 2-core machine besides one light run: each keeps about one core busy while it
computes, so two fill both cores; with three, two of them end-to-end shards, the load reached 11 to 17
and two-scheduler runs missed their 150 s deadline."""
LIGHT_RUNS = frozenset({"main-core", "main-tools"})
"""Runs that mostly wait (botocore's backoffs, local Batch jobs, held jobs, sleeps in the code under
test): half a core each in CI (CPU 3m45s in 7m34s, 1m42s in 3m30s). One of them goes beside the
``SLOTS`` others, where it fills the time they wait, instead of taking a whole slot."""
LIGHT_SLOTS = 1
MAX_STACK_RUNS = 1
"""End-to-end shards at once (``Run.stacks``): two together are the heaviest pair there is."""
MAIN_SHARDS = {
    "e2e-1": (
        "tests/e2e/test_two_schedulers.py",
        "tests/e2e/test_revoked_tasks.py",
        "tests/e2e/test_shutdown.py",
        "tests/e2e/test_operator_tools.py",
        "tests/e2e/test_job_definitions.py",
    ),
    "e2e-2": (
        "tests/e2e/test_scenarios.py",
        "tests/e2e/test_scheduler_adoption.py",
        "tests/e2e/test_s3_transport.py",
        "tests/e2e/test_failures.py",
        "tests/e2e/test_multi_team.py",
        "tests/e2e/test_spot_fallback.py",
    ),
    "tools": ("devtools/tests", "tests/benchmarks"),
}
"""The main run's shards besides ``core``, which runs every test path the others leave out (so a new
test module always runs somewhere). Groups are balanced by the ``--durations`` of a CI run."""
MAIN_SHARD_OPTIONS = {"e2e-2": ("--e2e-status-sources=events",)}
"""Scenarios and adoption take job status from events here and from polling on 3.2.2's leg
(constraints/matrix.txt): each of their stacks runs once, where two of each ran here before (about
three minutes of the longest shard). The status source is the executor's own code, the same on
every Airflow version; both sources run on 3.3.2 in the integration tests and the two-scheduler
stacks."""
INSTALL_OPTIONS = ("-q", "--compile-bytecode")
"""Every virtualenv is installed with its bytecode compiled: where ``PYTHONDONTWRITEBYTECODE`` is set
(it is on CI's machines), no Python process writes ``.pyc`` files, so without them each one compiled
every module it imported: ``import airflow`` took 3.4 CPU-seconds instead of 1.5, in every Airflow
component, CLI call, job and pytest run. Compiling at install costs about 11 CPU-seconds a virtualenv."""
INSTALL_TIMEOUT = 20 * 60
RUN_TIMEOUT = 45 * 60
"""Far above a run's usual time: a hung run ends with its log instead of holding CI to its hard stop."""
TAIL_LINES = 80
SLOWEST = 25
DURATION = re.compile(r"^(\d+\.\d+)s (setup|call|teardown) +\S")


@dataclass(frozen=True)
class Leg:
    """One Airflow version of ``constraints/matrix.txt`` and what its run runs."""

    airflow: str
    paths: tuple[str, ...]
    options: tuple[str, ...] = ()

    @property
    def constraints(self) -> Path:
        return ROOT / "constraints" / f"airflow-{self.airflow}.txt"


@dataclass(frozen=True)
class Run:
    """One pytest process: a shard of the main run (``leg`` None: ``.venv``) or a version's leg."""

    name: str
    paths: tuple[str, ...]
    options: tuple[str, ...] = ()
    leg: Leg | None = None
    stacks: bool = False
    """Runs Airflow stacks from start to end (an end-to-end shard; a leg's few end-to-end tests come
    last and briefly): at most ``MAX_STACK_RUNS`` such runs go at once."""

    @property
    def log(self) -> Path:
        return WORK / "logs" / f"{self.name}.log"


@dataclass(frozen=True)
class Outcome:
    run: Run
    returncode: int
    seconds: float
    cpu_seconds: float
    """User plus system time of pytest and every process it waited for (Airflow components, jobs)."""
    last_line: str


def read_matrix(text: str) -> list[Leg]:
    """One leg per line: the Airflow version, then its test paths and pytest options (``-...``); ``#``
    starts a comment line."""
    legs = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            version, *words = line.split()
            paths = tuple(word for word in words if not word.startswith("-"))
            legs.append(Leg(version, paths, tuple(word for word in words if word.startswith("-"))))
    return legs


def testpaths() -> list[str]:
    """Where pytest looks for tests when it is given no path (pyproject.toml)."""
    with (ROOT / "pyproject.toml").open("rb") as project:
        return tomllib.load(project)["tool"]["pytest"]["ini_options"]["testpaths"]


def main_shards() -> list[Run]:
    """The main run as independent shards; ``core`` is everything the named shards leave out.

    ``core`` is given the test paths no shard takes whole and ignores the named shards' paths below
    them (pytest ignores only what it meets while collecting, never a path it is given).
    """
    named = [
        Run(f"main-{name}", paths, MAIN_SHARD_OPTIONS.get(name, ()), stacks=starts_stacks(paths))
        for name, paths in MAIN_SHARDS.items()
    ]
    taken = [path for paths in MAIN_SHARDS.values() for path in paths]
    core_paths = tuple(path for path in testpaths() if path not in taken)
    left_out = tuple(f"--ignore={path}" for path in taken if path not in testpaths())
    return [Run("main-core", core_paths, left_out), *named]


def starts_stacks(paths: Iterable[str]) -> bool:
    return any(path.startswith("tests/e2e") for path in paths)


def leg_runs(legs: Iterable[Leg]) -> list[Run]:
    return [Run(f"airflow-{leg.airflow}", leg.paths, leg.options, leg) for leg in legs]


def names_tests(argument: str) -> bool:
    """Whether a command-line argument selects tests (a path, maybe with ``::test``) over options."""
    return not argument.startswith("-") and (ROOT / argument.split("::", 1)[0]).exists()


def venv_key(leg: Leg) -> str:
    digest = hashlib.sha256(sys.version.encode())
    digest.update(" ".join(INSTALL_OPTIONS).encode())
    for source in (leg.constraints, ROOT / "pyproject.toml", ROOT / "devtools" / "pyproject.toml"):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def venv_for(leg: Leg, output) -> Path:
    """The leg's virtualenv, installed from its constraints unless an identical one is kept."""
    venv = WORK / "venvs" / f"airflow-{leg.airflow}-{venv_key(leg)}"
    done = venv / ".installed"
    if done.exists():
        return venv
    for old in (WORK / "venvs").glob(f"airflow-{leg.airflow}-*"):
        shutil.rmtree(old)  # another version of the pins, or an install that was cut short

    def uv(*arguments: str) -> None:
        command = [str(ROOT / "scripts" / "uv"), *arguments]
        subprocess.run(
            command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, check=True, timeout=INSTALL_TIMEOUT
        )

    uv("venv", "-q", "-p", sys.executable, str(venv))
    uv(
        *("pip", "install", *INSTALL_OPTIONS, "-p", str(venv / "bin" / "python")),
        *("-c", str(leg.constraints), f"apache-airflow=={leg.airflow}"),
        *("-e", str(ROOT), "-e", str(ROOT / "devtools"), "--group", "pyproject.toml:dev"),
    )
    done.touch()
    return venv


def pytest_argv(python: Path, run: Run, arguments: list[str]) -> list[str]:
    """The run's own paths unless the arguments name some; never the cache of another run."""
    paths = [] if any(names_tests(argument) for argument in arguments) else list(run.paths)
    return [str(python), "-m", "pytest", "-p", "no:cacheprovider", *run.options, *arguments, *paths]


def execute(run: Run, arguments: list[str]) -> Outcome:
    """Install the leg's virtualenv if needed and run pytest, everything it prints going to the log."""
    start = time.monotonic()
    run.log.parent.mkdir(parents=True, exist_ok=True)
    with run.log.open("w") as output:
        try:
            python = Path(sys.executable) if run.leg is None else venv_for(run.leg, output) / "bin" / "python"
            argv = pytest_argv(python, run, arguments)
            output.write(f"$ {' '.join(argv)}\n")
            output.flush()
            code, cpu = run_measured(argv, output)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:  # installing
            output.write(f"\n{error}\n")
            code, cpu = 1, 0.0
    lines = run.log.read_text(errors="replace").splitlines()
    return Outcome(run, code, time.monotonic() - start, cpu, lines[-1].strip("= ") if lines else "")


def run_measured(argv: list[str], output, timeout: float = RUN_TIMEOUT) -> tuple[int, float]:
    """The exit code and CPU seconds of one pytest process, killed after ``timeout`` seconds.

    ``wait4`` gives the CPU time of this process alone, where ``RUSAGE_CHILDREN`` would mix the runs
    going at once: it is what tells which run to make cheaper.
    """
    process = subprocess.Popen(argv, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        process.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        timer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    if timed_out.is_set():
        output.write(f"\nkilled after {timeout:g} s: the run hung or is far slower than usual\n")
    return 1 if timed_out.is_set() else process.returncode, usage.ru_utime + usage.ru_stime


def line_of(outcome: Outcome) -> str:
    verdict = "ok" if outcome.returncode == 0 else f"FAILED (exit {outcome.returncode})"
    return (
        f"  {outcome.run.name}: {verdict} in {clock(outcome.seconds)} "
        f"({clock(outcome.cpu_seconds)} CPU): {outcome.last_line}"
    )


def clock(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def slowest(logs: dict[str, Path], count: int = SLOWEST) -> list[str]:
    """The slowest test phases of all runs (from the ``--durations`` in their logs), with their run."""
    found = []
    for name, log in logs.items():
        for line in log.read_text(errors="replace").splitlines():
            if match := DURATION.match(line):
                found.append((float(match[1]), f"{line}  [{name}]"))
    return [line for _, line in sorted(found, reverse=True)[:count]]


def report(outcomes: list[Outcome], seconds: float) -> None:
    cpu = clock(sum(outcome.cpu_seconds for outcome in outcomes))
    print(f"\nAll runs (logs in .matrix/logs/), {clock(seconds)} in all, {cpu} CPU:", flush=True)
    for outcome in outcomes:
        print(line_of(outcome))
    if longest := slowest({outcome.run.name: outcome.run.log for outcome in outcomes}):
        print("\nSlowest test phases of all runs:")
        print("\n".join(longest))
    for outcome in outcomes:
        if outcome.returncode != 0:
            tail = outcome.run.log.read_text(errors="replace").splitlines()[-TAIL_LINES:]
            print(f"\n---- {outcome.run.name}: last lines of {outcome.run.log.relative_to(ROOT)}")
            print("\n".join(tail), flush=True)


EXPECTED_SECONDS = {
    "main-core": 830.0,
    "airflow-3.2.2": 475.0,
    "airflow-3.3.0": 397.0,
    "main-e2e-1": 379.0,
    "main-e2e-2": 364.0,
    "airflow-3.1.8": 298.0,
    "main-tools": 255.0,
    "airflow-3.2.0": 193.0,
    "airflow-3.1.2": 161.0,
}
"""What each run takes beside another on 2 cores (the summary of a CI run), to start the longest first;
a run not listed (a new leg) is taken for ``DEFAULT_SECONDS``."""
DEFAULT_SECONDS = 420.0


def schedule(runs: list[Run]) -> list[Run]:
    """Longest first, so the runs still going at the end are short ones."""
    return sorted(runs, key=lambda run: -EXPECTED_SECONDS.get(run.name, DEFAULT_SECONDS))


def pick(waiting: list[Run], busy: list[Run]) -> Run | None:
    """The first waiting run that may start now: at most ``SLOTS`` runs that are not light and
    ``LIGHT_SLOTS`` light ones, and one that starts Airflow stacks only while fewer than
    ``MAX_STACK_RUNS`` such runs are going.

    A light run never takes a heavy slot: it would leave a core to its waits while heavy runs queue
    (replayed with the run lengths of a CI run of 2026-12-07, ``tools`` taking a heavy slot beside
    ``core`` ended the suite 44 s later)."""
    full = sum(run.stacks for run in busy) >= MAX_STACK_RUNS
    light = sum(run.name in LIGHT_RUNS for run in busy)
    heavy_free = len(busy) - light < SLOTS
    return next(
        (
            run
            for run in waiting
            if not (run.stacks and full) and (light < LIGHT_SLOTS if run.name in LIGHT_RUNS else heavy_free)
        ),
        None,
    )


def run_all(runs: list[Run], arguments: list[str]) -> list[Outcome]:
    """Every run, as ``pick`` allows, each slot taking the first run it allows when it is free."""
    waiting, busy, outcomes = list(runs), [], []
    changed = threading.Condition()

    def slot() -> None:
        while True:
            with changed:
                while (run := pick(waiting, busy)) is None:
                    if not waiting:
                        return
                    changed.wait()
                waiting.remove(run)
                busy.append(run)
            outcome = execute(run, arguments)
            with changed:
                busy.remove(run)
                outcomes.append(outcome)
                print(line_of(outcome), flush=True)
                changed.notify_all()

    with ThreadPoolExecutor(max_workers=SLOTS + LIGHT_SLOTS) as pool:
        slots = [pool.submit(slot) for _ in range(SLOTS + LIGHT_SLOTS)]
        try:
            for running in slots:
                running.result()
        except KeyboardInterrupt:  # the running pytest processes got the same SIGINT; start no others
            with changed:
                waiting.clear()
                changed.notify_all()
            raise
    return outcomes


def main(arguments: list[str]) -> int:
    legs = read_matrix(MATRIX.read_text())
    if arguments[:1] == ["--airflow"]:
        chosen = [leg for leg in legs if [leg.airflow] == arguments[1:2]]
        if not chosen:
            sys.exit(f"--airflow takes one of: {', '.join(leg.airflow for leg in legs)}")
        [run] = leg_runs(chosen)
        python = venv_for(chosen[0], None) / "bin" / "python"
        return subprocess.run(pytest_argv(python, run, arguments[2:]), cwd=ROOT, check=False).returncode
    if any(names_tests(argument) for argument in arguments):
        os.execv(sys.executable, [sys.executable, "-m", "pytest", *arguments])
    runs = schedule([*main_shards(), *leg_runs(legs)])
    print(
        f"{len(runs)} runs, {SLOTS} at a time and one light run beside them: "
        f"{', '.join(run.name for run in runs)}",
        flush=True,
    )
    start = time.monotonic()
    try:
        outcomes = run_all(runs, arguments)
    except KeyboardInterrupt:  # the running pytest processes got the same SIGINT
        return 130
    order = {run.name: index for index, run in enumerate(runs)}
    outcomes.sort(key=lambda outcome: order[outcome.run.name])
    report(outcomes, time.monotonic() - start)
    return exit_code(outcome.returncode for outcome in outcomes)


def exit_code(returncodes: Iterable[int]) -> int:
    """1 when any run failed, 0 otherwise: a run killed by a signal (the kernel's OOM killer: -9)
    returns a negative code, which must fail the suite too."""
    return 1 if any(returncode != 0 for returncode in returncodes) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
