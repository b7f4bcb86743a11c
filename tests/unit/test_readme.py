"""The README and docs/ are part of the product: the README gives the two commands first, the
configuration reference (docs/configuration.md) matches config_templates/config.yml, and the layout
map (docs/how-it-works.md) names every module of the runtime package."""

from __future__ import annotations

import runpy

from .helpers import ROOT


def test_config_reference_is_up_to_date():
    renderer = runpy.run_path(str(ROOT / "scripts" / "render_config_reference.py"))
    reference = (ROOT / "docs" / "configuration.md").read_text()
    assert renderer["render"]() in reference, "run scripts/render_config_reference.py --write"


def test_readme_gives_the_two_commands_and_they_exist():
    readme = (ROOT / "README.md").read_text()
    for command in ("scripts/demo", "scripts/test"):
        assert f"{command} " in readme
        assert (ROOT / command).stat().st_mode & 0o111
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_the_two_commands_come_before_the_version_matrix():
    readme = (ROOT / "README.md").read_text()
    assert readme.index("## Two commands") < readme.index("## Supported versions")


def layout_paths(layout: str) -> set[str]:
    """The package paths a layout map lists: two spaces of indent per folder level."""
    listed, folders = set(), []
    for line in layout.splitlines()[2:]:
        indent = len(line) - len(line.lstrip(" "))
        name = line.split()[0] if line.strip() else ""
        if indent < 2 or not name.endswith((".py", "/")):
            continue
        folders = folders[: indent // 2 - 1]
        listed.add("".join(folders) + name)
        if name.endswith("/"):
            folders.append(name)
    return listed


def test_the_layout_map_reads_nesting_from_indentation():
    layout = "```\npkg/\n  a.py   x\n  sub/   y\n    b.py  z\n           continued text\n  c.py\n"
    assert layout_paths(layout) == {"a.py", "sub/", "sub/b.py", "c.py"}


def test_the_layout_section_names_every_module_of_the_runtime_package_and_nothing_else():
    how_it_works = (ROOT / "docs" / "how-it-works.md").read_text()
    layout = how_it_works.split("## Layout", 1)[1].split("```", 2)[1]
    package = ROOT / "airflow_batch_executor"
    present = {
        p.relative_to(package).as_posix()
        for p in package.rglob("*.py")
        if p.name != "__init__.py" and p.relative_to(package).as_posix() != "version.py"
    }
    present |= {
        f"{p.relative_to(package).as_posix()}/"
        for p in package.rglob("*")
        if p.is_dir() and (p / "__init__.py").exists()
    }
    assert layout_paths(layout) == present
