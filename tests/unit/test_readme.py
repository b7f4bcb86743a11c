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


def test_the_layout_section_names_every_module_of_the_runtime_package_and_nothing_else():
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("### Layout", 1)[1].split("```", 2)[1]
    listed = {
        line.split()[0]
        for line in layout.splitlines()[2:]
        if line.startswith("  ") and line.split()[0].endswith((".py", "/"))
    }
    package = ROOT / "airflow_batch_executor"
    present = {p.name for p in package.glob("*.py") if p.name not in ("__init__.py", "version.py")}
    present |= {f"{p.name}/" for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert listed == present
