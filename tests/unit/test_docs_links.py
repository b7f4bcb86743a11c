"""Every relative link in the repository's markdown (README.md, docs/, CHANGELOG.md, the other READMEs)
points to a file that exists, and every ``#anchor`` to a heading of its file, with the slug GitHub
gives it: lowercase, punctuation other than hyphens and underscores removed, spaces turned into
hyphens, and ``-1``, ``-2``, … added to repeats. Links with a scheme (``https:``, ``mailto:``) are not
checked."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest

from .helpers import ROOT

SKIPPED_DIRS = {"build", "dist", "node_modules"}  # and every folder whose name starts with a dot

FENCE = re.compile(r"^ {0,3}(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]*)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:name|id)=[\"']([^\"']+)[\"']", re.IGNORECASE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def markdown_files() -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [name for name in dirs if not name.startswith(".") and name not in SKIPPED_DIRS]
        found.extend(Path(folder) / name for name in files if name.endswith(".md"))
    return sorted(found)


def prose_lines(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        marker = FENCE.match(line)
        if fence is None and marker:
            fence = marker[1]
        elif fence is not None and marker and marker[1] == fence:
            fence = None
        elif fence is None:
            lines.append((number, line))
    return lines


def heading_text(markdown: str) -> str:
    """A heading's text as GitHub renders it: code spans keep their content, links their text,
    emphasis and HTML tags go."""
    text = INLINE_CODE.sub(lambda m: m[2].strip(), markdown)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"(\*+|(?<![A-Za-z0-9])_+|_+(?![A-Za-z0-9]))", "", text).strip()


def slug(text: str) -> str:
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor GitHub makes for this markdown: each heading's slug (repeats numbered) and the
    names of HTML anchors."""
    found, seen = set(), Counter()
    for _, line in prose_lines(text):
        found.update(HTML_ANCHOR.findall(line))
        heading = HEADING.match(line)
        if heading:
            base = slug(heading_text(heading[2]))
            name = base if not seen[base] else f"{base}-{seen[base]}"
            seen[base] += 1
            found.add(name)
    return found


def links(text: str) -> list[tuple[int, str]]:
    """Every link target (inline, image or reference definition) outside code."""
    found = []
    for number, line in prose_lines(text):
        definition = REFERENCE_DEFINITION.match(line)
        if definition:
            found.append((number, definition[1]))
            continue
        prose = INLINE_CODE.sub("", line)
        found.extend((number, target) for target in INLINE_LINK.findall(prose))
    return found


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for number, target in links(path.read_text()):
        if not target or SCHEME.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / unquote(file_part)).resolve() if file_part else path
        where = f"{path.relative_to(root)}:{number}: {target}"
        if not destination.exists():
            problems.append(f"{where}: no such file")
        elif (
            anchor and destination.suffix == ".md" and unquote(anchor) not in anchors(destination.read_text())
        ):
            problems.append(f"{where}: no heading with this anchor in {destination.name}")
    return problems


def test_the_markdown_files_are_found():
    found = {path.relative_to(ROOT).as_posix() for path in markdown_files()}
    assert {"README.md", "CHANGELOG.md", "docs/operating.md", "benchmarks/README.md"} <= found


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_relative_link_and_anchor_resolves(path):
    problems = broken_links(path)
    assert not problems, "\n".join(problems)


def test_slugs_are_githubs():
    assert slug(heading_text("What happens when…")) == "what-happens-when"
    assert slug(heading_text("Per-task settings: `executor_config`")) == "per-task-settings-executor_config"
    assert slug(heading_text("Job status from Batch's own events (`status_queue_url`)")) == (
        "job-status-from-batchs-own-events-status_queue_url"
    )
    assert slug(heading_text("Multi-team (Airflow 3.2+)")) == "multi-team-airflow-32"
    assert slug(heading_text("1. Build the worker image")) == "1-build-the-worker-image"
    assert slug(heading_text("A **bold** [link](x.md) heading")) == "a-bold-link-heading"
    repeated = "# Notes\n\n## Notes\n\n```\n# Notes\n```\n\n### Notes\n"
    assert anchors(repeated) == {"notes", "notes-1", "notes-2"}


def test_a_broken_link_or_anchor_is_found(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## Part: one\n\n## Part: one\n")
    page = tmp_path / "README.md"
    page.write_text(
        "# Title\n\n"
        "[ok](docs/other.md) [ok](docs/other.md#part-one-1) [ok](#title) [ok](https://example.com/#nope)\n"
        "`[not a link](missing.md)`\n\n```\n[not a link](missing.md)\n```\n\n"
        "[gone](docs/missing.md) [bad anchor](docs/other.md#part-two) ![bad image](img.png)\n"
        "[bad](#no-such-heading) [repeat](docs/other.md#part-one-2)\n\n"
        "[ref]: docs/nowhere.md\n"
    )
    assert broken_links(page, tmp_path) == [
        "README.md:10: docs/missing.md: no such file",
        "README.md:10: docs/other.md#part-two: no heading with this anchor in other.md",
        "README.md:10: img.png: no such file",
        "README.md:11: #no-such-heading: no heading with this anchor in README.md",
        "README.md:11: docs/other.md#part-one-2: no heading with this anchor in other.md",
        "README.md:13: docs/nowhere.md: no such file",
    ]
