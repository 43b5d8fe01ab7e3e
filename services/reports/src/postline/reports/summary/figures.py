"""A week's figures for the summary, read from the hourly rollups (migration 0003).

- deliveries by status: accepted (``queued``), deferrals, succeeded, failed (events, as the
  statistics API counts them);
- errors by error status: error-log rows (bounces after a success included);
- top destination domains by deliveries accepted;
- the worst domains by error rate: failed ÷ (succeeded + failed), among domains with at least
  ``MIN_FINISHED`` finished deliveries in the week (a handful of mails says little).

Rollup hours are UTC: weeks in time zones whose offset is not a whole number of hours start
and end at the hour in which their midnight falls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from postline.reports.stats import ERROR_STATUS_NAMES, STATUS_COLUMNS
from postline.reports.store import Store
from postline.reports.summary.schedule import Week

TOP_DOMAINS = 10
WORST_DOMAINS = 5
MIN_FINISHED = 10


@dataclass(frozen=True)
class DomainFigures:
    domain: str
    queued: int
    deferred: int
    succeeded: int
    failed: int

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed

    @property
    def error_rate(self) -> float | None:
        return self.failed / self.finished if self.finished else None


@dataclass(frozen=True)
class WeekFigures:
    week: Week
    deliveries: dict[str, int]  # STATUS_COLUMNS -> count
    errors: dict[int, int]  # error status -> error-log rows
    domains: dict[str, DomainFigures] = field(default_factory=dict)

    def top_domains(self, limit: int = TOP_DOMAINS) -> list[DomainFigures]:
        ranked = sorted(self.domains.values(), key=lambda d: (-d.queued, -d.finished, d.domain))
        return [d for d in ranked if d.queued or d.finished][:limit]

    def worst_domains(self, limit: int = WORST_DOMAINS) -> list[DomainFigures]:
        rated = [d for d in self.domains.values() if d.finished >= MIN_FINISHED and d.failed]
        rated.sort(key=lambda d: (-(d.error_rate or 0.0), -d.failed, d.domain))
        return rated[:limit]


_WHERE = (
    "server = {server:String} AND hour >= {start:DateTime('UTC')} AND hour < {end:DateTime('UTC')}"
)


def _range(week: Week, server: str) -> tuple[str, dict[str, Any]]:
    start = week.start.replace(minute=0, second=0, microsecond=0)
    return _WHERE, {"server": server, "start": start, "end": week.end}


async def week_figures(store: Store, server: str, week: Week) -> WeekFigures:
    where, params = _range(week, server)
    sums = ", ".join(f"sum({c}) AS {c}" for c in STATUS_COLUMNS)
    [totals] = await store.query(f"SELECT {sums} FROM postline.stats_hourly WHERE {where}", params)
    errors = await store.query(
        f"SELECT status, sum(errors) AS n FROM postline.stats_errors_hourly WHERE {where} "
        "GROUP BY status",
        params,
    )
    domains = await store.query(
        f"SELECT recipient_domain AS domain, {sums} FROM postline.stats_domains_hourly "
        f"WHERE {where} GROUP BY domain",
        params,
    )
    return WeekFigures(
        week,
        {c: int(totals[c] or 0) for c in STATUS_COLUMNS},
        {int(r["status"]): int(r["n"]) for r in errors if int(r["status"]) in ERROR_STATUS_NAMES},
        {
            str(r["domain"]): DomainFigures(
                str(r["domain"]), *(int(r[c] or 0) for c in STATUS_COLUMNS)
            )
            for r in domains
        },
    )
