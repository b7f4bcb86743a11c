#!/usr/bin/env python3
"""The test suite on every supported Airflow version (what ``scripts/test`` runs; stdlib only).

``scripts/test`` (no test paths)
    runs the whole suite with uv.lock's Airflow in ``.venv`` and, beside it, one *leg* per version of
    ``constraints/matrix.txt``: that version's test paths, in a virtualenv installed from
    ``constraints/airflow-<version>.txt``. The legs mostly wait (on local Batch jobs, on schedulers),
    as does the main run's e2e part, so they share the machine's cores with it; at most ``JOBS`` legs
    run at once. Each leg writes to ``.matrix/logs/airflow-<version>.log``; a summary follows the main
    run's output, with the tail of every failed leg's log. The exit code is non-zero when the main run
    or any leg failed.
``scripts/test PATH... [OPTION...]``
    runs pytest on those paths in ``.venv`` only: an argument naming an existing file or folder (or
    ``file::test``) selects tests, so the matrix is left out. Options alone (``-q``, ``-k``, ``-x``)
    go to the main run and to every leg.
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
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MATRIX = ROOT / "constraints" / "matrix.txt"
WORK = ROOT / ".matrix"
JOBS = 2
"""Legs at once beside the main run: with two, a 2-core machine is already busy (load 3-8 measured)."""
INSTALL_TIMEOUT = 20 * 60
LEG_TIMEOUT = 45 * 60
"""Far above a leg's usual time: a hung leg ends with its log instead of holding CI to its hard stop."""
TAIL_LINES = 80


@dataclass(frozen=True)
class Leg:
    airflow: str
    paths: tuple[str, ...]
    options: tuple[str, ...] = ()

    @property
    def constraints(self) -> Path:
        return ROOT / "constraints" / f"airflow-{self.airflow}.txt"

    @property
    def log(self) -> Path:
        return WORK / "logs" / f"airflow-{self.airflow}.log"


@dataclass(frozen=True)
class Outcome:
    leg: Leg
    returncode: int
    seconds: float
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


def names_tests(argument: str) -> bool:
    """Whether a command-line argument selects tests (a path, maybe with ``::test``) over options."""
    return not argument.startswith("-") and (ROOT / argument.split("::", 1)[0]).exists()


def venv_key(leg: Leg) -> str:
    digest = hashlib.sha256(sys.version.encode())
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
        *("pip", "install", "-q", "-p", str(venv / "bin" / "python")),
        *("-c", str(leg.constraints), f"apache-airflow=={leg.airflow}"),
        *("-e", str(ROOT), "-e", str(ROOT / "devtools"), "--group", "pyproject.toml:dev"),
    )
    done.touch()
    return venv


def pytest_argv(python: Path, leg: Leg, arguments: list[str]) -> list[str]:
    """The leg's own paths unless the arguments name some; its own cache, never the main run's."""
    paths = [] if any(names_tests(argument) for argument in arguments) else list(leg.paths)
    return [str(python), "-m", "pytest", "-p", "no:cacheprovider", *leg.options, *arguments, *paths]


def run_leg(leg: Leg, arguments: list[str]) -> Outcome:
    """Install (if needed) and run one leg, everything it prints going to its log."""
    start = time.monotonic()
    leg.log.parent.mkdir(parents=True, exist_ok=True)
    with leg.log.open("w") as output:
        try:
            python = venv_for(leg, output) / "bin" / "python"
            output.write(f"$ {' '.join(pytest_argv(python, leg, arguments))}\n")
            output.flush()
            code = subprocess.run(
                pytest_argv(python, leg, arguments),
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=LEG_TIMEOUT,
                check=False,
            ).returncode
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            output.write(f"\n{error}\n")
            code = 1
    lines = leg.log.read_text(errors="replace").splitlines()
    return Outcome(leg, code, time.monotonic() - start, lines[-1].strip("= ") if lines else "")


def report(outcomes: list[Outcome]) -> None:
    print("\nAirflow version matrix (logs in .matrix/logs/):", flush=True)
    for outcome in outcomes:
        verdict = "ok" if outcome.returncode == 0 else f"FAILED (exit {outcome.returncode})"
        minutes, seconds = divmod(round(outcome.seconds), 60)
        print(f"  airflow {outcome.leg.airflow}: {verdict} in {minutes}m{seconds:02d}s: {outcome.last_line}")
    for outcome in outcomes:
        if outcome.returncode != 0:
            tail = outcome.leg.log.read_text(errors="replace").splitlines()[-TAIL_LINES:]
            print(f"\n---- airflow {outcome.leg.airflow}: last lines of {outcome.leg.log.relative_to(ROOT)}")
            print("\n".join(tail), flush=True)


def main(arguments: list[str]) -> int:
    legs = read_matrix(MATRIX.read_text())
    if arguments[:1] == ["--airflow"]:
        chosen = [leg for leg in legs if [leg.airflow] == arguments[1:2]]
        if not chosen:
            sys.exit(f"--airflow takes one of: {', '.join(leg.airflow for leg in legs)}")
        leg = chosen[0]
        python = venv_for(leg, None) / "bin" / "python"
        return subprocess.run(pytest_argv(python, leg, arguments[2:]), cwd=ROOT, check=False).returncode
    main_run = [sys.executable, "-m", "pytest", *arguments]
    if any(names_tests(argument) for argument in arguments):
        os.execv(sys.executable, main_run)
    print(f"Airflow {', '.join(leg.airflow for leg in legs)}: running in the background", flush=True)
    pool = ThreadPoolExecutor(max_workers=JOBS)
    longest_first = sorted(legs, key=lambda leg: len(leg.paths), reverse=True)  # the e2e legs
    futures = [pool.submit(run_leg, leg, arguments) for leg in longest_first]
    try:
        code = subprocess.run(main_run, cwd=ROOT, check=False).returncode
        outcomes = [future.result() for future in futures]
    except KeyboardInterrupt:  # the running legs got the same SIGINT; start no others
        pool.shutdown(wait=False, cancel_futures=True)
        return 130
    pool.shutdown()
    report(outcomes)
    return code or max(outcome.returncode for outcome in outcomes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
