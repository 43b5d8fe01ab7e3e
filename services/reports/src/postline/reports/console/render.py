"""Rendering a console page: one Jinja2 template per page (``templates/<page>.html``), the
words of the viewer's language, dates as the API answered them (already in the viewer's time
zone), and the few values every page needs (the user, the CSRF token, the menu)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from postline.reports.console.i18n import Words

_env = Environment(
    loader=PackageLoader("postline.reports.console", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    extensions=["jinja2.ext.do"],
)


def when(value: str | None) -> str:
    """``2026-11-01T09:30:00.000+09:00`` as ``2026-11-01 09:30:00`` (the API already wrote it
    in the viewer's zone)."""
    if not value:
        return ""
    return f"{value[:10]} {value[11:19]}" if len(value) >= 19 else value


def query(params: Mapping[str, Any], **changes: Any) -> str:
    """``?a=1&b=2`` of ``params`` with ``changes`` (None removes a key); empty values dropped."""
    merged = {**params, **changes}
    kept = {k: v for k, v in merged.items() if v not in (None, "")}
    return "?" + urlencode(kept) if kept else ""


_env.filters["when"] = when
_env.globals["query"] = query


def render(
    request: Request,
    template: str,
    words: Words,
    context: Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    html = _env.get_template(f"{template}.html").render(
        **{"user": None, "t": words, "lang": words.language, "path": request.url.path, **context}
    )
    response = HTMLResponse(html, status_code=status, headers=dict(headers or {}))
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'"
    )
    response.headers["Referrer-Policy"] = "same-origin"
    return response
