"""What a page shows of an API answer that the template should not work out: chart data,
default date ranges, the menu, error sentences. Pure functions of the answers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from postline.reports.console.i18n import Words
from postline.reports.params import SearchError
from postline.reports.search import DELIVERY_STATUSES, ERROR_STATUSES

# The menu: (path, words key, administrators only).
MENU = (
    ("/errors", "nav.errors", False),
    ("/graphs/errors", "nav.error_graph", False),
    ("/deliveries", "nav.deliveries", False),
    ("/graphs/deliveries", "nav.delivery_graph", False),
    ("/graphs/domains", "nav.domains", False),
    ("/stats/daily", "nav.stats", False),
    ("/live", "nav.live", False),
    ("/suppressions", "nav.suppressions", False),
    ("/settings", "nav.settings", False),
    ("/accounts", "nav.accounts", True),
    ("/operations", "nav.operations", True),
    ("/account", "nav.my_account", False),
)

# Statistics pages: name -> chart type.
STAT_PAGES = {
    "daily": "bar",
    "monthly": "bar",
    "days-of-month": "bar",
    "days-of-week": "bar",
    "hours": "bar",
    "mx-hosts": "bar",
    "senders": "bar",
    "reply-codes": "pie",
}
# Days a page covers when the URL names none (today included).
DEFAULT_DAYS = {"log": 1, "graph": 7, "stats": 30, "monthly": 365}


def menu(words: Words, is_admin: bool, path: str) -> list[dict[str, Any]]:
    return [
        {"href": href, "label": words(key), "current": path == href or path.startswith(href + "/")}
        for href, key, admin_only in MENU
        if is_admin or not admin_only
    ]


def today_in(timezone: str, now: float | None = None) -> date:
    moment = datetime.now(UTC) if now is None else datetime.fromtimestamp(now, UTC)
    return moment.astimezone(ZoneInfo(timezone)).date()


def with_defaults(params: Mapping[str, str], timezone: str, days: int) -> dict[str, str]:
    """The URL's parameters; a first visit (no dates at all) gets the last ``days`` days."""
    chosen = dict(params)
    if "start" not in chosen and "end" not in chosen:
        end = today_in(timezone)
        chosen["start"] = (end - timedelta(days=days - 1)).isoformat()
        chosen["end"] = end.isoformat()
    return chosen


def form_error(words: Words, exc: SearchError) -> str:
    """A parameter error in the viewer's words, naming the field by its label."""
    field = words(f"field.{exc.field}") if words.has(f"field.{exc.field}") else exc.field
    key = f"problem.{exc.kind}"
    if words.language == "en" and exc.kind == "invalid":
        return exc.message
    return words(key if words.has(key) else "problem.invalid", field=field)


def error_status_choices(words: Words) -> list[tuple[str, str]]:
    return [(str(s), f"{s} {words(f'error_status.{s}')}") for s in ERROR_STATUSES]


def delivery_status_choices(words: Words) -> list[tuple[str, str]]:
    return [(s, words(f"status.{s}")) for s in DELIVERY_STATUSES]


def scope_list(servers: Mapping[str, list[str]], params: Mapping[str, str]) -> list[dict[str, Any]]:
    """The left-hand list: every server with its API users, the current one marked."""
    server, api_user = params.get("server", ""), params.get("api_user", "")
    return [
        {
            "name": name,
            "current": server == name and not api_user,
            "users": [{"name": u, "current": server == name and api_user == u} for u in users],
        }
        for name, users in servers.items()
    ]


def _colour(i: int) -> str:
    palette = (
        "#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2",
        "#db2777", "#65a30d", "#9333ea", "#ea580c", "#475569",
    )  # fmt: skip
    return palette[i % len(palette)]


STATUS_COLOURS = {
    "queued": "#64748b",
    "deferred": "#d97706",
    "succeeded": "#16a34a",
    "failed": "#dc2626",
    "errors": "#7c3aed",
}


def chart(
    kind: str,
    labels: list[str],
    series: list[tuple[str, str, list[int]]],
    title: str,
) -> dict[str, Any]:
    """The chart a page draws from its table: ``series`` is (key, label, values)."""
    pie = kind in ("pie", "doughnut")
    datasets = []
    for i, (key, label, values) in enumerate(series):
        colour = STATUS_COLOURS.get(key, _colour(i))
        datasets.append(
            {
                "label": label,
                "data": values,
                "backgroundColor": [_colour(j) for j in range(len(values))] if pie else colour,
                "borderColor": colour,
            }
        )
    return {"type": kind, "title": title, "labels": labels, "datasets": datasets}


def stats_chart(words: Words, answer: Mapping[str, Any], kind: str) -> dict[str, Any]:
    key = answer["key"]
    rows = answer["rows"]
    labels = [_row_label(words, key, row) for row in rows]
    columns = answer["columns"]
    series = [(c, words(f"column.{c}"), [int(row[c]) for row in rows]) for c in columns]
    if kind == "pie":
        series = series[:1]
    return chart(kind, labels, series, words(f"stat.{answer['stat']}"))


def _row_label(words: Words, key: str, row: Mapping[str, Any]) -> str:
    if key == "weekday":
        return words(f"weekday.{row[key]}")
    if key == "status":
        return f"{row[key]} {words(f'error_status.{row[key]}')}"
    return str(row[key])


def error_pie(words: Words, answer: Mapping[str, Any]) -> dict[str, Any]:
    rows = [r for r in answer["rows"] if r["errors"]]
    labels = [_row_label(words, "status", r) for r in rows]
    return chart(
        "pie",
        labels,
        [("errors", words("column.errors"), [r["errors"] for r in rows])],
        words("nav.error_graph"),
    )


def delivery_lines(words: Words, answer: Mapping[str, Any]) -> dict[str, Any]:
    rows = answer["rows"]
    labels = [_time_label(r["time"]) for r in rows]
    series = [(c, words(f"status.{c}"), [r[c] for r in rows]) for c in answer["columns"]]
    return chart("line", labels, series, words("nav.delivery_graph"))


def _time_label(value: str) -> str:
    return value[:16].replace("T", " ") if "T" in value else value


def domain_pie(words: Words, answer: Mapping[str, Any]) -> dict[str, Any]:
    rows = [r for r in answer["rows"] if r["queued"]]
    return chart(
        "pie",
        [r["domain"] for r in rows],
        [("queued", words("column.queued"), [r["queued"] for r in rows])],
        words("nav.domains"),
    )


def pages(current: int, count: int) -> list[int]:
    """The page numbers a pager shows (every page: a search answers at most 10)."""
    return list(range(1, max(1, count) + 1))


def timezones() -> list[str]:
    from zoneinfo import available_timezones

    return sorted(z for z in available_timezones() if "/" in z or z == "UTC")


# Graph pages: /graphs/<name> -> (the statistic, its chart).
GRAPHS = {
    "errors": ("errors", error_pie),
    "deliveries": ("deliveries", delivery_lines),
    "domains": ("domains", domain_pie),
}
