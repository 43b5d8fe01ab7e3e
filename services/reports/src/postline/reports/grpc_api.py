"""The reports gRPC service (proto/postline/v1/reports.proto): the HTTP API's twin.

Every RPC turns its request into the HTTP API's parameters and calls the same ReportQueries,
so both answer the same rows under the same rules. Auth: metadata
``authorization: Bearer <api user>:<secret>`` (or Basic).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from postline.common.telemetry import grpc_server_interceptors
from postline.reports.access import Caller, Gate
from postline.reports.csv_export import ExportBroken
from postline.reports.errors import Forbidden, NotFound, ReportsError, Throttled, Unauthorized
from postline.reports.queries import ReportQueries
from postline.reports.search import SearchError
from postline.v1 import reports_pb2, reports_pb2_grpc

logger = logging.getLogger(__name__)

T = TypeVar("T")


def peer_ip(peer: str) -> str:
    """``ipv4:127.0.0.1:5000`` / ``ipv6:[::1]:5000`` to the address."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition("]")[0].lstrip("[")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    return ""


def search_params(request: reports_pb2.SearchRequest) -> dict[str, str]:
    params = {
        "start": request.start,
        "end": request.end,
        "status": request.status,
        "address": request.address,
        "server": request.server,
        "api_user": request.api_user,
        "tz": request.tz,
    }
    if request.page:
        params["page"] = str(request.page)
    return {k: v for k, v in params.items() if v}


def report_row(row: dict[str, Any]) -> reports_pb2.ReportRow:
    message = reports_pb2.ReportRow(
        created=row["created"],
        status=str(row["status"]),
        to=row["to"],
        message_id=row["messageId"],
        return_path=row["returnPath"],
        subject=row["subject"],
        api_data=row["apiData"],
        reason=row["reason"],
        delivery_id=row["deliveryId"],
        trace_id=row["traceId"],
        updated=row.get("updated", ""),
        attempt=row.get("attempt", 0),
        reply_code=row.get("replyCode", 0),
        enhanced_status=row.get("enhancedStatus", ""),
        id=row["id"],
        event_id=row.get("eventId", ""),
    )
    setattr(message, "from", row["from"])  # a Python keyword
    return message


def search_response(answer: dict[str, Any]) -> reports_pb2.SearchResponse:
    return reports_pb2.SearchResponse(
        results=[report_row(r) for r in answer["results"]],
        total=answer["total"],
        truncated=answer.get("truncated", False),
        page=answer.get("page", 1),
        pages=answer.get("pages", 1),
    )


def stats_response(answer: dict[str, Any]) -> reports_pb2.StatsResponse:
    key, columns = answer["key"], answer["columns"]
    return reports_pb2.StatsResponse(
        stat=answer["stat"],
        key=key,
        columns=columns,
        rows=[
            reports_pb2.StatsRow(
                key=str(row[key]),
                label=row.get("label", ""),
                values=[row[c] for c in columns],
            )
            for row in answer["rows"]
        ],
        interval=answer.get("interval", ""),
        tz=answer["tz"],
    )


def history_response(answer: dict[str, Any]) -> reports_pb2.DeliveryHistory:
    message = reports_pb2.DeliveryHistory(
        delivery_id=answer["deliveryId"],
        message_id=answer["id"],
        server=answer["server"],
        api_user=answer["apiUser"],
        to=answer["to"],
        subject=answer["subject"],
        api_data=answer["apiData"],
        return_path=answer["returnPath"],
        header_message_id=answer["headerMessageId"],
        created=answer["created"] or "",
        status=answer["status"] or "",
        trace_id=answer["traceId"],
        events=[
            reports_pb2.HistoryEvent(
                event_id=e["eventId"],
                at=e["at"],
                status=e["status"],
                attempt=e["attempt"],
                reply_code=e["replyCode"],
                enhanced_status=e["enhancedStatus"],
                reason=e["reason"],
                mx_host=e["mxHost"],
                source_ip=e["sourceIp"],
                error_status=e["errorStatus"],
                next_attempt_at=e["nextAttemptAt"] or "",
                trace_id=e["traceId"],
            )
            for e in answer["events"]
        ],
        errors=[
            reports_pb2.HistoryError(
                event_id=e["eventId"],
                created=e["created"],
                status=e["status"],
                reason=e["reason"],
                source=e["source"],
                permanent=e["permanent"],
                reply_code=e["replyCode"],
                enhanced_status=e["enhancedStatus"],
                trace_id=e["traceId"],
            )
            for e in answer["errors"]
        ],
    )
    setattr(message, "from", answer["from"])
    return message


class ReportsService(reports_pb2_grpc.ReportsServicer):
    def __init__(self, queries: ReportQueries, gate: Gate | None = None) -> None:
        self.queries = queries
        self.gate = gate or Gate(queries.policy_source)

    async def _principal(self, context: grpc.aio.ServicerContext[Any, Any]) -> Caller:
        metadata = dict(context.invocation_metadata() or ())
        header = metadata.get("authorization", "")
        ip = peer_ip(context.peer())
        try:
            self.gate.check_ip(ip)
            return await self.gate.api_user(
                header if isinstance(header, str) else header.decode(errors="replace"), ip
            )
        except Forbidden as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, exc.message)
        except Throttled as exc:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{exc.message} (retry after {exc.retry_after}s)",
            )
        except Unauthorized as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)
        raise AssertionError("unreachable")  # abort raised

    async def _fail(self, context: grpc.aio.ServicerContext[Any, Any], exc: Exception) -> NoReturn:
        if isinstance(exc, SearchError):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{exc.field}: {exc.message}")
        if isinstance(exc, Forbidden):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, exc.message)
        if isinstance(exc, NotFound):
            await context.abort(grpc.StatusCode.NOT_FOUND, exc.message)
        if isinstance(exc, ReportsError):
            await context.abort(grpc.StatusCode.UNAVAILABLE, exc.message)
        raise exc

    async def _answer(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        run: Callable[[Caller], Awaitable[T]],
    ) -> T:
        principal = await self._principal(context)
        try:
            return await run(principal)
        except (SearchError, ReportsError) as exc:
            await self._fail(context, exc)

    async def SearchDeliveries(
        self,
        request: reports_pb2.SearchRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> reports_pb2.SearchResponse:
        params = search_params(request)
        answer = await self._answer(context, lambda p: self.queries.search("deliveries", p, params))
        return search_response(answer)

    async def SearchErrors(
        self,
        request: reports_pb2.SearchRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> reports_pb2.SearchResponse:
        params = search_params(request)
        answer = await self._answer(context, lambda p: self.queries.search("errors", p, params))
        return search_response(answer)

    async def _export(
        self,
        kind: str,
        request: reports_pb2.SearchRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[reports_pb2.CsvChunk]:
        principal = await self._principal(context)
        try:
            q = self.queries.export_query(kind, principal, search_params(request))
            body = await self.queries.export(kind, q)
        except (SearchError, ReportsError) as exc:
            await self._fail(context, exc)
        except Exception as exc:
            logger.error("%s export could not start: %s", kind, exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the export cannot be read now")
        try:
            async for data in body:
                yield reports_pb2.CsvChunk(data=data)
        except ExportBroken as exc:
            # The stream ends with an error status, never as if complete.
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

    async def ExportDeliveries(
        self,
        request: reports_pb2.SearchRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[reports_pb2.CsvChunk]:
        # An async generator itself: that is how grpc.aio recognises a streaming handler.
        async for chunk in self._export("deliveries", request, context):
            yield chunk

    async def ExportErrors(
        self,
        request: reports_pb2.SearchRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[reports_pb2.CsvChunk]:
        # An async generator itself: that is how grpc.aio recognises a streaming handler.
        async for chunk in self._export("errors", request, context):
            yield chunk

    async def GetStats(
        self,
        request: reports_pb2.StatsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> reports_pb2.StatsResponse:
        params = {
            "start": request.start,
            "end": request.end,
            "tz": request.tz,
            "interval": request.interval,
            "domain": request.domain,
            "server": request.server,
            "api_user": request.api_user,
            "limit": str(request.limit) if request.limit else "",
        }
        params = {k: v for k, v in params.items() if v}
        answer = await self._answer(context, lambda p: self.queries.stats(request.name, p, params))
        return stats_response(answer)

    async def LiveDeliveries(
        self,
        request: reports_pb2.LiveRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> reports_pb2.SearchResponse:
        params = {"tz": request.tz} if request.tz else {}
        answer = await self._answer(context, lambda p: self.queries.live(p, params))
        return search_response(answer)

    async def GetDeliveryHistory(
        self,
        request: reports_pb2.HistoryRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> reports_pb2.DeliveryHistory:
        params = {"tz": request.tz} if request.tz else {}
        answer = await self._answer(
            context, lambda p: self.queries.history(p, request.delivery_id, params)
        )
        return history_response(answer)


class GrpcServer:
    def __init__(self, queries: ReportQueries, listen: str, gate: Gate | None = None) -> None:
        self.queries = queries
        self.listen = listen
        self.gate = gate
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        # bound to the running loop
        server = grpc.aio.server(interceptors=grpc_server_interceptors())
        reports_pb2_grpc.add_ReportsServicer_to_server(
            ReportsService(self.queries, self.gate), server
        )
        if server.add_insecure_port(self.listen) == 0:
            raise RuntimeError(f"cannot listen on {self.listen}")
        await server.start()
        self._server = server

    async def stop(self, grace: float = 5.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
