"""The README is part of the product: its option table must match config_templates/config.yml."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_config_reference_is_up_to_date():
    renderer = runpy.run_path(str(ROOT / "scripts" / "render_config_reference.py"))
    readme = (ROOT / "README.md").read_text()
    assert renderer["render"]() in readme, "run scripts/render_config_reference.py --write"


def test_readme_gives_the_two_commands_and_they_exist():
    readme = (ROOT / "README.md").read_text()
    for command in ("scripts/demo", "scripts/test"):
        assert f"{command} " in readme
        assert (ROOT / command).stat().st_mode & 0o111
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
