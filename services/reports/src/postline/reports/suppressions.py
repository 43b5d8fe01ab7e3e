"""The suppression list (delivery blocking) through the bounce service's gRPC
``Suppressions`` API (proto/postline/v1/suppression.proto): what the console's Suppressions
page and ``GET/POST/DELETE /api/v1/suppressions`` show and change.

An API user reads and changes its own server's list; a console account any server's (an
administrator only may change it). Bounce validates the address and stores the change; its
``INVALID_ARGUMENT`` becomes a 400 naming ``address``, its absence a 503.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import grpc

from postline.common.policy import Policy, PolicySource
from postline.common.policy.units import parse_duration
from postline.common.telemetry import grpc_client_interceptors
from postline.common.timeutil import from_timestamp, to_timestamp
from postline.reports.access import Caller
from postline.reports.errors import Forbidden, Unavailable
from postline.reports.params import SearchError, format_instant, parse_text, parse_tz, parse_whole
from postline.v1 import suppression_pb2, suppression_pb2_grpc

logger = logging.getLogger(__name__)

PAGE_SIZE = 20
TIMEOUT = 10.0
MAX_REASON = 500


def _instant(stamp: Any, tz: Any) -> str | None:
    seconds = from_timestamp(stamp)
    if not seconds:
        return None
    return format_instant(datetime.fromtimestamp(seconds, UTC), tz)


def entry(item: suppression_pb2.Suppression, tz: Any) -> dict[str, Any]:
    return {
        "server": item.server,
        "address": item.address,
        "reason": item.reason,
        "created": _instant(item.created, tz),
        "expiresAt": _instant(item.expires_at, tz) if item.HasField("expires_at") else None,
    }


class SuppressionsClient:
    def __init__(self, address: str, policy: PolicySource) -> None:
        self.address = address
        self._policy = policy
        self._channel: grpc.aio.Channel | None = None

    @property
    def policy(self) -> Policy:
        return self._policy()

    def _stub(self) -> suppression_pb2_grpc.SuppressionsStub:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(
                self.address, interceptors=grpc_client_interceptors()
            )
        return suppression_pb2_grpc.SuppressionsStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def server_for(self, caller: Caller, asked: str | None, *, required: bool) -> str:
        """The server a request is about: an API user's own; for a console account the one
        asked for, or the only one the policy has."""
        if caller.server is not None:
            if asked and asked != caller.server:
                raise Forbidden(f"API user {caller.name} cannot use server {asked}", "server")
            return caller.server
        if asked:
            if asked not in self.policy.servers:
                raise SearchError(
                    "server", f"server must be one of {', '.join(self.policy.servers)}", "choice"
                )
            return asked
        if required:
            if len(self.policy.servers) == 1:
                return next(iter(self.policy.servers))
            raise SearchError("server", "server is required (the policy has several)", "required")
        return ""

    async def _call(self, what: str, call: Any) -> Any:
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise SearchError("address", exc.details() or "invalid address") from None
            logger.warning("suppressions %s failed: %s %s", what, exc.code().name, exc.details())
            raise Unavailable("the suppression list is unavailable; try again") from None

    async def list(self, caller: Caller, params: Mapping[str, str]) -> dict[str, Any]:
        tz = parse_tz(params.get("tz"))
        server = self.server_for(caller, parse_text(params, "server", 200), required=False)
        contains = (parse_text(params, "address") or "").strip().lower()
        page = parse_whole(params.get("page") or "1", "page", 1, 100_000)
        answer = await self._call(
            "list",
            self._stub().List(
                suppression_pb2.ListSuppressionsRequest(
                    server=server, address_contains=contains, page=page, page_size=PAGE_SIZE
                ),
                timeout=TIMEOUT,
            ),
        )
        return {
            "results": [entry(item, tz) for item in answer.suppressions],
            "total": answer.total,
            "page": page,
            "pages": max(1, math.ceil(answer.total / PAGE_SIZE)),
        }

    async def add(
        self, caller: Caller, body: Mapping[str, Any], tz_name: str | None = None
    ) -> dict[str, Any]:
        caller.require_change()
        tz = parse_tz(tz_name)
        address = str(body.get("address") or "").strip()
        if not address:
            raise SearchError("address", "address is required", "required")
        if len(address) > 320:
            raise SearchError("address", "address may be at most 320 characters", "too_long")
        reason = str(body.get("reason") or "").strip()[:MAX_REASON]
        server = self.server_for(caller, str(body.get("server") or "") or None, required=True)
        item = suppression_pb2.Suppression(
            server=server, address=address, reason=reason or f"added by {caller.name}"
        )
        expires_in = str(body.get("expires_in") or "").strip()
        if expires_in:
            try:
                seconds = parse_duration(expires_in).total_seconds()
            except ValueError:
                raise SearchError(
                    "expires_in", "expires_in must be a duration like 30d or 12h", "invalid"
                ) from None
            if seconds <= 0:
                raise SearchError("expires_in", "expires_in must be positive", "invalid")
            item.expires_at.CopyFrom(to_timestamp(datetime.now(UTC).timestamp() + seconds))
        added = await self._call(
            "add",
            self._stub().Add(
                suppression_pb2.AddSuppressionRequest(suppression=item), timeout=TIMEOUT
            ),
        )
        return entry(added, tz)

    async def remove(self, caller: Caller, address: str, server: str | None) -> bool:
        caller.require_change()
        address = address.strip()
        if not address or len(address) > 320:
            raise SearchError("address", "address is required", "required")
        server_name = self.server_for(caller, server, required=True)
        answer = await self._call(
            "remove",
            self._stub().Remove(
                suppression_pb2.SuppressionKey(server=server_name, address=address),
                timeout=TIMEOUT,
            ),
        )
        return bool(answer.removed)
