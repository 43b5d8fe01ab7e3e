"""Probes: liveness, readiness with its reasons, and Prometheus metrics, as an ASGI app.

``/healthz`` answers 200 while the process's event loop runs (the probe is served by it).
``/readyz`` answers 200 only when every readiness check passes — the broker can publish and
every consumer is subscribed, ClickHouse accepts writes... — and 503 with the reasons
otherwise, so Kubernetes takes a replica out of service while it cannot do its work and puts
it back once it can, without restarting it. ``/metrics`` is prometheus-client's own app.

Services with an HTTP API of their own (ingress, reports) mount these routes in it; the
others serve this app with uvicorn on ``POSTLINE_HEALTH_LISTEN`` (see ``runtime``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import make_asgi_app

logger = logging.getLogger(__name__)

# None when the part is fine, else why the service is not ready because of it.
Check = Callable[[], str | None]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Readiness:
    """Named checks; ready when none of them names a problem. Changes are logged once."""

    def __init__(self) -> None:
        self._checks: list[tuple[str, Check]] = []
        self._notes: list[Callable[[], str]] = []
        self._last: tuple[str, ...] | None = None

    def add(self, name: str, check: Check) -> None:
        self._checks.append((name, check))

    def note(self, line: Callable[[], str]) -> None:
        """A line every ``/readyz`` answer carries, ready or not (the policy version in use:
        ``policy 3f2a9c1b7e00``), so a rollout can be followed replica by replica."""
        self._notes.append(line)

    def problems(self) -> list[str]:
        found = []
        for name, check in self._checks:
            try:
                problem = check()
            except Exception as exc:  # a check that fails is a reason, not a crash
                problem = f"check failed: {exc!r}"
            if problem:
                found.append(f"{name}: {problem}")
        if tuple(found) != self._last:
            if found:
                logger.warning("not ready: %s", "; ".join(found))
            elif self._last is not None:
                logger.info("ready again")
            self._last = tuple(found)
        return found

    def __call__(self) -> bool:
        return not self.problems()

    def answer(self) -> tuple[int, str]:
        """The ``/readyz`` answer: 200 ``ready``, or 503 and a line per problem; then the
        notes."""
        problems = self.problems()
        notes = "".join(f"{note()}\n" for note in self._notes)
        if not problems:
            return 200, "ready\n" + notes
        return 503, "".join(f"not ready: {problem}\n" for problem in problems) + notes


def probe_app(readiness: Readiness) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An ASGI app answering ``/healthz``, ``/readyz`` and ``/metrics`` (404 otherwise)."""
    metrics = make_asgi_app()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        path = scope.get("path", "/")
        if path == "/metrics":
            await metrics(scope, receive, send)
            return
        if path == "/healthz":
            status, body = 200, "ok\n"
        elif path == "/readyz":
            status, body = readiness.answer()
        else:
            status, body = 404, "not found\n"
        await _text(send, status, body)

    return app


async def _text(send: Send, status: int, body: str) -> None:
    data = body.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(data)),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
