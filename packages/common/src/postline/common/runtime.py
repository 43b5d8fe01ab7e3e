"""What every service process needs around its own work: a stop signal, health and metrics.

Services without an HTTP server of their own serve ``/healthz`` (alive), ``/readyz`` (its
dependencies answered; the body names the policy version in use) and ``/metrics``
(Prometheus) on ``POSTLINE_HEALTH_LISTEN``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Literal

import uvicorn
import uvloop
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)


class LoopSettings(BaseSettings):
    """Read before the event loop exists (the service's own settings are read inside it)."""

    model_config = SettingsConfigDict(env_prefix="POSTLINE_", extra="ignore")

    # uvloop (libuv) runs the same asyncio code with a cheaper loop and transports: less CPU
    # per SMTP command and AMQP frame (bench/README.md, "End to end").
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a service's ``main`` on the event loop ``POSTLINE_EVENT_LOOP`` names."""
    if LoopSettings().event_loop == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())


def stop_event() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (Kubernetes sends SIGTERM on rolling updates)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (IPv6 as ``[::1]:port``) to a host and a port."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {listen!r}")
    return host.strip("[]"), int(port)


def readiness(ok: bool, status: Callable[[], str] | None = None) -> tuple[int, str]:
    """The ``/readyz`` answer: the HTTP status and a body of lines (``ready`` or ``not
    ready``, then e.g. ``policy 3f2a9c1b7e00``)."""
    lines = ["ready" if ok else "not ready"]
    if status is not None:
        lines.append(status())
    return (200 if ok else 503), "\n".join(lines) + "\n"


async def serve_health(
    listen: str, ready: Callable[[], bool], status: Callable[[], str] | None = None
) -> asyncio.Server:
    """A minimal HTTP/1.0 responder for probes and scraping (no framework on the hot path).
    ``status`` adds a line to ``/readyz`` (the policy version)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), timeout=5)
            path = request.split(b" ")[1].decode() if request.count(b" ") >= 2 else "/"
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            if path == "/healthz":
                line, ctype, body = "200 OK", "text/plain", b"ok\n"
            elif path == "/readyz":
                code, text = readiness(ready(), status)
                line = "200 OK" if code == 200 else "503 Service Unavailable"
                ctype, body = "text/plain", text.encode()
            elif path == "/metrics":
                line, ctype, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest()
            else:
                line, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            head = (
                f"HTTP/1.0 {line}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    host, port = split_listen(listen)
    server = await asyncio.start_server(answer, host, port)
    logger.info("%s serving /healthz /readyz /metrics", listen)
    return server


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside a service's own loop: the service, not uvicorn, owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """An ASGI app served on ``host:port`` until ``stop()``."""

    def __init__(self, app: Any, listen: str) -> None:
        host, port = split_listen(listen)
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                await self._task  # re-raise why it could not start (e.g. port in use)
                raise RuntimeError("HTTP server stopped while starting")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
