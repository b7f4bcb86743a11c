"""uv.lock is what scripts/bootstrap installs without resolving (``uv sync --frozen``): it must match
pyproject.toml and devtools/pyproject.toml. After changing a dependency, run ``scripts/uv lock``
(or ``scripts/lock`` to move every pin to the newest version allowed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_lock_matches_the_project_files():
    uv = ROOT / ".uv" / "bin" / "uv"
    command = str(uv) if uv.exists() else shutil.which("uv")
    assert command, "uv is installed into .uv/ by scripts/bootstrap (scripts/uv)"
    result = subprocess.run(
        [command, "lock", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"uv.lock is out of date: run scripts/uv lock\n{result.stderr[-3000:]}"
