"""``Suppressions`` over gRPC: check, list (paged), add, remove.

``List`` with an empty ``server`` lists every server's entries, page by page (pages from 1):
that is how a scheduler replica loads its copy at start. Unknown servers and malformed
addresses are ``INVALID_ARGUMENT``; ClickHouse or RabbitMQ failures are ``UNAVAILABLE``
(retry), never a half-done change: an add or remove is answered only after it was stored
and its change published.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from postline.bounce.suppressions import SuppressionList
from postline.common.addresses import AddressError, address_key, parse_address
from postline.common.broker.connection import BrokerUnavailable
from postline.common.policy import Policy
from postline.common.runtime import split_listen
from postline.common.telemetry import grpc_server_interceptors
from postline.common.timeutil import from_timestamp
from postline.v1 import suppression_pb2, suppression_pb2_grpc

logger = logging.getLogger(__name__)

R = TypeVar("R")


class InvalidArgument(Exception):
    pass


class SuppressionsServicer(suppression_pb2_grpc.SuppressionsServicer):
    def __init__(self, suppressions: SuppressionList, policy: Callable[[], Policy]) -> None:
        self.suppressions = suppressions
        self.policy = policy

    def _server(self, name: str, *, required: bool = True) -> str:
        if not name and not required:
            return ""
        if name not in self.policy().servers:
            raise InvalidArgument(f"unknown server {name!r}")
        return name

    @staticmethod
    def _address(address: str) -> str:
        address = address_key(address)
        try:
            parse_address(address)
        except AddressError as exc:
            raise InvalidArgument(f"bad address {address!r}: {exc.reason}") from exc
        return address

    async def Check(
        self, request: suppression_pb2.SuppressionKey, context: grpc.aio.ServicerContext[Any, Any]
    ) -> suppression_pb2.CheckSuppressionResponse:
        async def run() -> suppression_pb2.CheckSuppressionResponse:
            entry = await self.suppressions.check(
                self._server(request.server), self._address(request.address)
            )
            if entry is None:
                return suppression_pb2.CheckSuppressionResponse(suppressed=False)
            return suppression_pb2.CheckSuppressionResponse(
                suppressed=True, suppression=entry.to_proto()
            )

        return await _answering(context, run)

    async def List(
        self,
        request: suppression_pb2.ListSuppressionsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> suppression_pb2.ListSuppressionsResponse:
        async def run() -> suppression_pb2.ListSuppressionsResponse:
            entries, total = await self.suppressions.list(
                self._server(request.server, required=False),
                request.address_contains.strip().lower(),
                request.page or 1,
                request.page_size or 100,
            )
            return suppression_pb2.ListSuppressionsResponse(
                suppressions=[e.to_proto() for e in entries], total=total
            )

        return await _answering(context, run)

    async def Add(
        self,
        request: suppression_pb2.AddSuppressionRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> suppression_pb2.Suppression:
        async def run() -> suppression_pb2.Suppression:
            item = request.suppression
            server = self._server(item.server)
            expire_after = None
            if item.HasField("expires_at"):
                expire_after = from_timestamp(item.expires_at) - time.time()
                if expire_after <= 0:
                    raise InvalidArgument("expires_at is in the past")
            entry = await self.suppressions.add(
                server,
                self._address(item.address),
                item.reason or "added by an administrator",
                expire_after=expire_after,
            )
            return entry.to_proto()

        return await _answering(context, run)

    async def Remove(
        self, request: suppression_pb2.SuppressionKey, context: grpc.aio.ServicerContext[Any, Any]
    ) -> suppression_pb2.RemoveSuppressionResponse:
        async def run() -> suppression_pb2.RemoveSuppressionResponse:
            removed = await self.suppressions.remove(
                self._server(request.server), self._address(request.address)
            )
            return suppression_pb2.RemoveSuppressionResponse(removed=removed)

        return await _answering(context, run)


async def _answering(
    context: grpc.aio.ServicerContext[Any, Any], run: Callable[[], Awaitable[R]]
) -> R:
    try:
        return await run()
    except InvalidArgument as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    except BrokerUnavailable as exc:
        logger.warning("suppression change not published: %s", exc)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "the change could not be published")
    except grpc.aio.AbortError:
        raise
    except Exception:
        logger.exception("suppression request failed")
        await context.abort(grpc.StatusCode.UNAVAILABLE, "the suppression list is unavailable")
    raise AssertionError("unreachable")  # context.abort raises


class GrpcServer:
    """``Suppressions`` on ``host:port`` (port 0 picks a free one: see ``port``)."""

    def __init__(self, servicer: SuppressionsServicer, listen: str) -> None:
        host, port = split_listen(listen)
        self._server = grpc.aio.server(interceptors=grpc_server_interceptors())
        suppression_pb2_grpc.add_SuppressionsServicer_to_server(servicer, self._server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.port = self._server.add_insecure_port(address)

    async def start(self) -> None:
        await self._server.start()

    async def stop(self, grace: float = 5.0) -> None:
        await self._server.stop(grace)
