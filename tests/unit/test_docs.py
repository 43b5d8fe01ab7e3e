"""The documentation lives with the code: every Markdown file's links stay inside the
repository and point at files (and headings) that exist.

A link with a scheme (``https://``, ``mailto:``) is a web address and is left alone; anything
else is a path, resolved from the linking file, that must exist inside the repository. A
``#fragment`` on a Markdown target must name one of its headings (GitHub's anchors).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from postline.common import semconv

ROOT = Path(__file__).resolve().parents[2]

# Directories that hold other projects' Markdown (installed packages) or build output.
_SKIP_DIRS = {".git", ".venv", "node_modules", "build", "var", ".mypy_cache", ".ruff_cache"}

# [text](target "title") and ![alt](target); the target may be wrapped in <...>.
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# [label]: target
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+\1", re.DOTALL)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def markdown_files() -> list[Path]:
    found = []
    for path in ROOT.rglob("*.md"):
        if _SKIP_DIRS.isdisjoint(path.relative_to(ROOT).parts):
            found.append(path)
    return sorted(found)


def links(text: str) -> Iterator[str]:
    """Every link target of a Markdown text, code blocks and code spans left out."""
    prose = _CODE_SPAN.sub("", _FENCE.sub("", text))
    for pattern in (_INLINE, _REFERENCE):
        for match in pattern.finditer(prose):
            yield match.group(1)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for match in _HEADING.finditer(text):
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def problem(source: Path, target: str) -> str | None:
    """Why ``target`` (a link in ``source``) is broken, or None."""
    if _SCHEME.match(target):
        return None
    path_part, _, fragment = target.partition("#")
    if path_part.startswith("/"):
        return "an absolute path: a clone has no such file"
    resolved = (source.parent / path_part).resolve() if path_part else source
    if not resolved.is_relative_to(ROOT):
        return "points outside the repository"
    if not resolved.exists():
        return "no such file"
    if fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
        return f"no heading #{fragment} there"
    return None


def test_markdown_files_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in markdown_files()}
    assert {"README.md", "docs/architecture.md", "bench/README.md"} <= names


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_stay_in_the_repository(path: Path) -> None:
    broken = [
        f"{target}: {why}"
        for target in links(path.read_text(encoding="utf-8"))
        if (why := problem(path, target)) is not None
    ]
    assert not broken, f"{path.relative_to(ROOT)} has broken links:\n" + "\n".join(broken)


def test_the_check_catches_what_it_should(tmp_path: Path) -> None:
    """The checker itself: a link out of the repository, to a missing file or heading, is
    reported; a web address, a good path and a good heading are not."""
    page = ROOT / "docs" / "architecture.md"
    assert problem(page, "../../shared/DESIGN.md") == "points outside the repository"
    assert problem(page, "/work/shared/DESIGN.md") is not None
    assert problem(page, "missing.md") == "no such file"
    assert problem(page, "deploy.md#no-such-heading") == "no heading #no-such-heading there"
    assert problem(page, "deploy.md#replicated-queues") is None
    assert problem(page, "../README.md") is None
    assert problem(page, "https://example.test/x") is None
    assert list(links("see [a](x.md) and `[b](y.md)` and\n```\n[c](z.md)\n```\n[d]: w.md")) == [
        "x.md",
        "w.md",
    ]
    assert slug("Ingress: SMTP relay and send API") == "ingress-smtp-relay-and-send-api"
    assert slug("Telling the sender: webhooks and the weekly summary") == (
        "telling-the-sender-webhooks-and-the-weekly-summary"
    )


SERVICES = ("ingress", "scheduler", "sender", "bounce", "reports")
# Every service README answers the same questions, in this order.
SERVICE_SECTIONS = ("Owns", "Consumes", "Publishes", "Settings", "Metrics")


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_readme_has_the_same_shape(service: str) -> None:
    readme = ROOT / "services" / service / "README.md"
    assert readme.exists(), f"services/{service} has no README.md"
    text = _FENCE.sub("", readme.read_text(encoding="utf-8"))
    sections = re.findall(r"^## (.+?)\s*$", text, re.MULTILINE)
    missing = [s for s in SERVICE_SECTIONS if s not in sections]
    assert not missing, f"services/{service}/README.md lacks the sections {missing}"
    order = [sections.index(s) for s in SERVICE_SECTIONS]
    assert order == sorted(order), f"services/{service}/README.md: sections out of order"
    settings = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    assert "POSTLINE_" in settings, f"services/{service}/README.md: Settings names no variable"
    metrics = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    declared = [
        name
        for key, name in vars(semconv).items()
        if key.startswith("METRIC_") and name.startswith(f"postline_{service}_")
    ]
    assert declared, f"semconv declares no metric of {service}"
    unlisted = [name for name in declared if name not in metrics]
    assert not unlisted, f"services/{service}/README.md, Metrics, does not list {unlisted}"
