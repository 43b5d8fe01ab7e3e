"""Bulk templates: ``{{name}}`` placeholders in subject, text and html, filled per recipient."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

# ``{{name}}`` or ``{{ name }}``; names are letters, digits, ``_``, ``.`` and ``-``.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")


def placeholders(text: str | None) -> frozenset[str]:
    """The names used in ``text``."""
    return frozenset(PLACEHOLDER.findall(text)) if text else frozenset()


def render(text: str, values: Mapping[str, str], *, escape_html: bool = False) -> str:
    """``text`` with every placeholder replaced (all must have a value; see `placeholders`)."""

    def value(match: re.Match[str]) -> str:
        found = values[match.group(1)]
        return html.escape(found) if escape_html else found

    return PLACEHOLDER.sub(value, text)
