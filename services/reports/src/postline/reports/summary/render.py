"""The summary mail: a text part and an HTML part with the same tables.

Each figure stands beside the previous week's and the change; a domain's error rate is
failed ÷ finished (see ``figures.py``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from postline.reports.stats import ERROR_STATUS_NAMES
from postline.reports.summary.figures import MIN_FINISHED, DomainFigures, WeekFigures

STATUS_LABELS = {
    "queued": "accepted",
    "deferred": "deferred (attempts)",
    "succeeded": "succeeded",
    "failed": "failed",
}

Table = tuple[str, Sequence[str], list[Sequence[str]]]  # title, header, rows


def change(now: int, before: int) -> str:
    if before == 0:
        return "new" if now else "–"
    return f"{(now - before) / before * 100:+.1f}%"


def rate(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def tables(this: WeekFigures, previous: WeekFigures) -> list[Table]:
    deliveries: list[Sequence[str]] = [
        (label, f"{this.deliveries[key]:,}", f"{previous.deliveries[key]:,}",
         change(this.deliveries[key], previous.deliveries[key]))
        for key, label in STATUS_LABELS.items()
    ]  # fmt: skip
    statuses = sorted(set(this.errors) | set(previous.errors))
    errors: list[Sequence[str]] = [
        (f"{s} {ERROR_STATUS_NAMES[s]}", f"{this.errors.get(s, 0):,}",
         f"{previous.errors.get(s, 0):,}", change(this.errors.get(s, 0), previous.errors.get(s, 0)))
        for s in statuses
    ]  # fmt: skip
    if not errors:
        errors = [("no errors", "0", "0", "–")]
    top = [_top_row(d, previous.domains.get(d.domain)) for d in this.top_domains()]
    worst = [_worst_row(d, previous.domains.get(d.domain)) for d in this.worst_domains()]
    return [
        ("Deliveries", ("", "this week", "previous week", "change"), deliveries),
        ("Errors by status", ("status", "this week", "previous week", "change"), errors),
        (
            "Top destination domains",
            ("domain", "accepted", "succeeded", "failed", "accepted the week before"),
            top or [("no deliveries", "", "", "", "")],
        ),
        (
            f"Worst domains by error rate (failed ÷ finished, at least {MIN_FINISHED} finished)",
            ("domain", "error rate", "failed", "finished", "rate the week before"),
            worst or [("none", "", "", "", "")],
        ),
    ]


def _top_row(d: DomainFigures, before: DomainFigures | None) -> Sequence[str]:
    return (
        d.domain,
        f"{d.queued:,}",
        f"{d.succeeded:,}",
        f"{d.failed:,}",
        f"{before.queued:,}" if before else "0",
    )


def _worst_row(d: DomainFigures, before: DomainFigures | None) -> Sequence[str]:
    return (
        d.domain,
        rate(d.error_rate),
        f"{d.failed:,}",
        f"{d.finished:,}",
        rate(before.error_rate if before else None),
    )


def title(server: str, this: WeekFigures) -> str:
    week = this.week
    return f"Postline weekly summary: {server}, {week.first_day} to {week.last_day}"


def text_part(server: str, timezone: str, this: WeekFigures, previous: WeekFigures) -> str:
    lines = [
        title(server, this),
        f"Days of {timezone}; compared with {previous.week.first_day} to {previous.week.last_day}.",
        "",
    ]
    for caption, header, rows in tables(this, previous):
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        lines.append(caption)
        for row in [header, *rows]:
            cells = [str(row[0]).ljust(widths[0])]
            cells += [str(c).rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
            lines.append("  " + "  ".join(cells).rstrip())
        lines.append("")
    return "\n".join(lines)


def html_part(server: str, timezone: str, this: WeekFigures, previous: WeekFigures) -> str:
    e = html.escape
    out = [
        '<!doctype html><html><head><meta charset="utf-8">',
        f"<title>{e(title(server, this))}</title></head>",
        '<body style="font-family: sans-serif">',
        f'<h1 style="font-size: 1.3em">{e(title(server, this))}</h1>',
        f"<p>Days of {e(timezone)}; compared with {previous.week.first_day} to "
        f"{previous.week.last_day}.</p>",
    ]
    for caption, header, rows in tables(this, previous):
        out.append(f'<h2 style="font-size: 1.1em">{e(caption)}</h2>')
        out.append('<table cellpadding="4" style="border-collapse: collapse">')
        out.append("<tr>" + "".join(f'<th align="left">{e(h)}</th>' for h in header) + "</tr>")
        for row in rows:
            cells = [f"<td>{e(str(row[0]))}</td>"]
            cells += [f'<td align="right">{e(str(c))}</td>' for c in row[1:]]
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def summary_mail(
    *,
    server: str,
    timezone: str,
    sender: str,
    recipients: Sequence[str],
    message_id: str,
    this: WeekFigures,
    previous: WeekFigures,
    now: datetime,
) -> bytes:
    message = EmailMessage()
    message["From"] = f"Postline <{sender}>"
    message["To"] = ", ".join(recipients)
    message["Subject"] = title(server, this)
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
    message["X-Postline-Summary"] = "weekly"
    message.set_content(text_part(server, timezone, this, previous))
    message.add_alternative(html_part(server, timezone, this, previous), subtype="html")
    return message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
