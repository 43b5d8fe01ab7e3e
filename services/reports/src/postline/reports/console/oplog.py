"""The operation log: who did what, when, from which address.

Every log-in, failed log-in, log-out and change made in the console or through the reports
API (suppressions) is a row. Nothing updates or deletes a row (the console shows them to
administrators, read-only); they go with the retention like the other logs.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from postline.common.ids import new_id
from postline.reports.console.state import insert
from postline.reports.params import format_instant, parse_range, parse_text, parse_whole
from postline.reports.store import Store

logger = logging.getLogger(__name__)

COLUMNS = ("at", "id", "actor", "ip", "action", "target", "detail")
PAGE_SIZE = 50
MAX_ROWS = 1000

# Every action written (the console translates each).
ACTIONS = (
    "login",
    "login_failed",
    "login_throttled",
    "logout",
    "password_changed",
    "preferences_changed",
    "totp_enabled",
    "totp_reset",
    "account_created",
    "account_disabled",
    "account_enabled",
    "suppression_added",
    "suppression_removed",
)


class OperationLog:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def record(
        self, actor: str, ip: str, action: str, target: str = "", detail: str = ""
    ) -> None:
        assert action in ACTIONS, action
        at = datetime.fromtimestamp(self.clock(), UTC)
        logger.info("%s %s %s from %s %s", actor or "-", action, target, ip, detail)
        await insert(
            self.store,
            "operation_log",
            [(at, new_id(), actor, ip, action, target, detail)],
            COLUMNS,
        )

    async def search(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Rows of the days ``start``..``end`` (in ``tz``), newest first; ``actor`` and
        ``action`` narrow them; the first 1,000 at most, 50 per page."""
        dates = parse_range(params)
        actor = parse_text(params, "actor", 320)
        action = parse_text(params, "action", 40)
        page = parse_whole(params.get("page") or "1", "page", 1, MAX_ROWS // PAGE_SIZE)
        clauses = ["at >= {start:DateTime64(3, 'UTC')}", "at < {end:DateTime64(3, 'UTC')}"]
        sql_params: dict[str, Any] = {"start": dates.first_instant, "end": dates.end_instant}
        if actor:
            clauses.append("lowerUTF8(actor) = lowerUTF8({actor:String})")
            sql_params["actor"] = actor
        if action:
            clauses.append("action = {action:String}")
            sql_params["action"] = action
        rows = await self.store.query(
            f"SELECT {', '.join(COLUMNS)} FROM postline.operation_log "
            f"WHERE {' AND '.join(clauses)} ORDER BY at DESC, id DESC LIMIT {MAX_ROWS + 1}",
            sql_params,
        )
        truncated = len(rows) > MAX_ROWS
        rows = rows[:MAX_ROWS]
        chunk = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        return {
            "results": [
                {
                    "at": format_instant(r["at"], dates.tz),
                    "actor": r["actor"],
                    "ip": r["ip"],
                    "action": r["action"],
                    "target": r["target"],
                    "detail": r["detail"],
                }
                for r in chunk
            ],
            "total": len(rows),
            "truncated": truncated,
            "page": page,
            "pages": max(1, math.ceil(len(rows) / PAGE_SIZE)),
        }
